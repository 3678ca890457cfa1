// Package video carries live video from CCTV cameras (RTSP pull) and
// body-cams (WHIP ingest, RFC 9725) to control-centre browsers (WHEP,
// draft-ietf-wish-whep) without decoding it.
//
// # How data moves
//
//	camera --RTSP/RTP--> rtspRelay ─┐
//	                                ├─> forwarder ──(bounded queue per viewer)──> viewer goroutine ──SRTP──> browser
//	body-cam --WHIP/SRTP--> reader ─┘      │  keyframe cache, shared NACK ring
//	                                       └── PLI (rate-limited) back to the WHIP publisher
//
// One forwarder per stream ("camera:<id>" or "unit:<id>") receives RTP
// packets from its single source goroutine. For H.264 it reads only NAL
// unit headers to find access-unit boundaries and keeps the latest IDR
// access unit with its SPS/PPS. Each packet is pushed, by pointer, into
// every viewer's bounded channel; a full channel drops the packet for that
// viewer only, so a slow viewer never delays the others. Each viewer has
// one goroutine that rewrites SSRC, payload type, sequence number and
// timestamp (source + per-viewer offset) and writes the shared payload into
// its SRTP stream. The encrypted packets of all viewers go to one UDP
// socket that sends them in batches with sendmmsg(2) (batchConn): on a VM
// the per-packet sendto(2) was half the CPU of forwarding.
//
// A new viewer first receives the cached keyframe, renumbered to end just
// before the next live packet, so its decoder starts at once instead of
// waiting up to a GOP; then live packets from the next access unit. The
// frames between the cached keyframe and now are not replayed, so until
// the next keyframe the picture may show smearing where motion referenced
// them; for WHIP sources the join also sends a PLI so that keyframe comes
// within a round trip.
//
// Retransmissions: viewers share the stream's ring of the last 1024 video
// packets. A viewer's NACK is mapped back through its offset and answered
// from the ring, so per-viewer memory does not include a retransmission
// buffer (pion's default interceptors keep one per PeerConnection). The
// viewer API therefore uses an empty interceptor registry; publishers use
// NACK generation and RTCP reports. All PeerConnections share one
// SettingEngine and, with Config.UDPMuxPort, one UDP socket.
//
// # Sources
//
// A camera stream starts when its first viewer asks (HandleWHEP), keeps
// running while viewers remain and for Config.GracePeriod after the last
// leaves, and reconnects with exponential backoff when the camera drops;
// viewers stay attached for Config.SourceLostTimeout, then their tracks
// end. Packets larger than the WebRTC MTU are re-fragmented into FU-A;
// nothing is decoded. H.265 cameras are refused with a message that
// browsers need H.264, or pulled from their SubstreamURL when configured.
//
// A unit stream exists while its WHIP publisher is connected; its end (a
// DELETE or a lost peer) ends the stream for every viewer.
//
// # Several nodes: redirect, not relay
//
// A stream lives on the node that owns its source. With Redis, the key
// kuzet:video:stream:<id> holds the owner's AdvertiseURL with a TTL that
// the owner refreshes from Run; a crashed node's keys expire. A WHEP
// request reaching another node is answered with 307 Temporary Redirect to
// the owner's /whep/<id>. We redirect rather than relay because WHEP
// clients follow 307 with the same offer (draft-ietf-wish-whep, "Load
// balancing and redirections", as RFC 9725 section 4.5 for WHIP), the media then flows once, camera → owner → browser, instead of
// through a second node that would add a hop of latency, double the
// bandwidth and need its own keyframe cache; and a camera is pulled at
// most once in the cluster, which matters for cameras that allow few RTSP
// sessions. The cost is that every node must be reachable from browsers
// (ICE host or NAT 1:1 addresses per node), which a control centre's LAN
// provides.
//
// # Access and audit
//
// The web layer authenticates and decides who may watch; this package
// checks that a unit stream is published only by a principal bound to that
// unit, and reports each view (start and end) through Config.OnView for
// the journal.
//
// # Locks
//
// Server.mu guards the stream and session maps and the per-stream viewer
// counts and grace timers. forwarder.mu guards one stream's viewer list,
// keyframe cache and ring. Order: Server.mu before forwarder.mu; no code
// takes Server.mu while holding forwarder.mu.
//
// Camera credentials live in Camera.RTSPURL and SubstreamURL; they are
// never logged (Camera.LogValue, RedactURL) and never encoded to JSON
// (Camera.MarshalJSON encodes Public()).
package video
