// WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) client for Kuzet's
// browser screens. Offers are complete (ICE gathered before the POST): the
// server does not take trickle ICE (PATCH answers 405). Only H.264 is
// offered for video, the one codec the server forwards without transcoding.
// @ts-check

/**
 * Waits until ICE gathering is complete, or at most ms.
 * @param {RTCPeerConnection} pc
 * @param {number} ms
 */
export function gathered(pc, ms = 3000) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve(undefined);
    const done = () => { if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(undefined); } };
    const t = setTimeout(resolve, ms);
    pc.addEventListener('icegatheringstatechange', done);
  });
}

/**
 * Puts H.264 (packetization-mode=1, constrained baseline first) ahead of
 * and instead of the other video codecs.
 * @param {RTCRtpTransceiver} tr
 * @param {'sender'|'receiver'} side
 */
export function preferH264(tr, side) {
  const caps = side === 'sender' ? RTCRtpSender.getCapabilities('video') : RTCRtpReceiver.getCapabilities('video');
  if (!caps) return false;
  const h264 = caps.codecs.filter((c) => c.mimeType.toLowerCase() === 'video/h264' && /packetization-mode=1/.test(c.sdpFmtpLine || ''));
  if (h264.length === 0) return false;
  h264.sort((a, b) => Number(/42e01f/.test(b.sdpFmtpLine || '')) - Number(/42e01f/.test(a.sdpFmtpLine || '')));
  const rtx = caps.codecs.filter((c) => c.mimeType.toLowerCase() === 'video/rtx');
  tr.setCodecPreferences([...h264, ...rtx]);
  return true;
}

/**
 * POSTs pc's complete offer to url and applies the answer.
 * @param {RTCPeerConnection} pc
 * @param {string} url
 * @param {string} token
 * @returns {Promise<string>} the session URL to DELETE
 */
async function negotiate(pc, url, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer ' + token },
    body: pc.localDescription?.sdp,
  });
  const body = await res.text();
  if (res.status !== 201) {
    let msg = body;
    try { msg = JSON.parse(body).message; } catch (_) { /* not JSON */ }
    throw new Error(`${url}: ${res.status} ${msg}`);
  }
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  return new URL(res.headers.get('Location') || '', res.url).toString();
}

/**
 * Publishes a stream over WHIP.
 * @param {string} url e.g. /whip/unit:P101
 * @param {string} token bearer token of an officer or device of that unit
 * @param {MediaStream} stream
 * @param {RTCIceServer[]} [iceServers]
 */
export async function whip(url, token, stream, iceServers = []) {
  const pc = new RTCPeerConnection({ iceServers });
  for (const track of stream.getTracks()) {
    const tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    if (track.kind === 'video' && !preferH264(tr, 'sender')) {
      pc.close();
      throw new Error('this browser cannot encode H.264, which the server needs');
    }
  }
  try {
    return { pc, location: await negotiate(pc, url, token) };
  } catch (e) {
    pc.close();
    throw e;
  }
}

/**
 * Plays a stream over WHEP into a video element. The jitter buffer target
 * is 0: a control room wants the picture now rather than smooth.
 * @param {string} url e.g. /whep/camera:abay-1
 * @param {string} token
 * @param {HTMLVideoElement} video
 * @param {RTCIceServer[]} [iceServers]
 */
export async function whep(url, token, video, iceServers = []) {
  const pc = new RTCPeerConnection({ iceServers });
  const tr = pc.addTransceiver('video', { direction: 'recvonly' });
  preferH264(tr, 'receiver');
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const ms = new MediaStream();
  pc.ontrack = (ev) => {
    const r = /** @type {any} */ (ev.receiver);
    if ('jitterBufferTarget' in r) r.jitterBufferTarget = 0;
    if ('playoutDelayHint' in r) r.playoutDelayHint = 0;
    ms.addTrack(ev.track);
    video.srcObject = ms;
  };
  try {
    return { pc, location: await negotiate(pc, url, token) };
  } catch (e) {
    pc.close();
    throw e;
  }
}

/**
 * Fetches the STUN/TURN servers (with this caller's own TURN credential)
 * to pass to whip() and whep().
 * @param {string} token
 * @returns {Promise<RTCIceServer[]>}
 */
export async function iceServers(token) {
  const res = await fetch('/api/v1/video/ice-servers', { headers: { Authorization: 'Bearer ' + token } });
  if (!res.ok) return [];
  return (await res.json()).ice_servers || [];
}

/**
 * Ends a WHIP or WHEP session.
 * @param {string} location
 * @param {string} token
 */
export async function hangup(location, token) {
  await fetch(location, { method: 'DELETE', headers: { Authorization: 'Bearer ' + token } });
}
