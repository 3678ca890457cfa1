// WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) client for Kuzet's
// browser screens. The offer goes out after at most 150 ms of ICE
// gathering (host candidates are there at once); candidates found later
// (STUN, TURN) are trickled to the session with PATCH (RFC 9725 section
// 4.3), so a slow TURN server does not hold the picture back. Only H.264 is
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
 * Sends candidates to a session as a trickle-ice-sdpfrag PATCH.
 * @param {string} location
 * @param {string} token
 * @param {string} etag
 * @param {string} creds "a=ice-ufrag:…\r\na=ice-pwd:…\r\n" of the offer
 * @param {RTCIceCandidate[]} cands
 * @param {boolean} end whether gathering is complete
 */
async function trickle(location, token, etag, creds, cands, end) {
  let frag = creds;
  const byMid = new Map();
  for (const c of cands) {
    const mid = c.sdpMid || '0';
    if (!byMid.has(mid)) byMid.set(mid, []);
    byMid.get(mid).push(c.candidate);
  }
  if (byMid.size === 0) byMid.set('0', []);
  for (const [mid, lines] of byMid) {
    frag += `m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:${mid}\r\n`;
    for (const l of lines) frag += `a=${l}\r\n`;
  }
  if (end) frag += 'a=end-of-candidates\r\n';
  /** @type {Record<string, string>} */
  const headers = { 'Content-Type': 'application/trickle-ice-sdpfrag', Authorization: 'Bearer ' + token };
  if (etag) headers['If-Match'] = etag;
  const res = await fetch(location, { method: 'PATCH', headers, body: frag });
  if (res.status !== 204) console.warn(`trickle ICE to ${location}: ${res.status}`);
}

/**
 * POSTs pc's offer to url (after at most 150 ms of gathering), applies the
 * answer and trickles the candidates found later.
 * @param {RTCPeerConnection} pc
 * @param {string} url
 * @param {string} token
 * @returns {Promise<string>} the session URL to DELETE
 */
async function negotiate(pc, url, token) {
  /** @type {RTCIceCandidate[]} */
  let later = [];
  let ended = false;
  /** @type {(() => void) | null} */
  let flush = null;
  pc.addEventListener('icecandidate', (ev) => {
    if (ev.candidate && ev.candidate.candidate) later.push(ev.candidate); else ended = true;
    if (flush) flush();
  });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc, 150);
  const offer = pc.localDescription?.sdp || '';
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer ' + token },
    body: offer,
  });
  const body = await res.text();
  if (res.status !== 201) {
    let msg = body;
    try { msg = JSON.parse(body).message; } catch (_) { /* not JSON */ }
    throw new Error(`${url}: ${res.status} ${msg}`);
  }
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  const location = new URL(res.headers.get('Location') || '', res.url).toString();
  const etag = res.headers.get('ETag') || '';
  const creds = offer.split(/\r?\n/).filter((l) => l.startsWith('a=ice-ufrag:') || l.startsWith('a=ice-pwd:')).slice(0, 2).join('\r\n') + '\r\n';
  const sent = new Set(offer.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:')).map((l) => l.slice(2)));
  let endSent = ended && sent.size > 0 && later.every((c) => sent.has(c.candidate));
  let busy = false;
  flush = () => {
    if (busy || endSent) return;
    const cands = later.filter((c) => !sent.has(c.candidate));
    if (cands.length === 0 && !ended) return;
    later = [];
    for (const c of cands) sent.add(c.candidate);
    busy = true;
    const end = ended;
    trickle(location, token, etag, creds, cands, end)
      .catch((e) => console.warn('trickle ICE:', e))
      .finally(() => { busy = false; if (end) endSent = true; else if (flush) flush(); });
  };
  flush();
  return location;
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
