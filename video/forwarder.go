package video

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// packet is one RTP packet as the source delivered it. It is shared by every
// viewer and the retransmission buffer and never changed after write.
type packet struct {
	hdr      rtp.Header // header extensions stripped: their ids are per PeerConnection
	payload  []byte
	video    bool
	auStart  bool // first packet of an access unit (the previous one had the marker bit)
	keyStart bool // first packet of an access unit that holds SPS or an IDR slice
}

// rtxRing is the one retransmission buffer of a stream, shared by all its
// viewers: a NACK from any viewer is answered from here, so memory does not
// grow with the number of viewers (pion's NACK responder keeps a buffer per
// PeerConnection).
const rtxRing = 1024

// forwarder fans one stream's RTP packets out to its viewers without
// decoding. The source goroutine calls write; viewers join and leave from
// their own goroutines. mu guards everything below it; it is held only for
// non-blocking work (a channel send per viewer that drops when full).
type forwarder struct {
	m         *Metrics
	onKeyReq  func() // asks the source for a keyframe (rate limited by the source)
	hasVideo  bool
	hasAudio  bool
	startedAt time.Time

	mu      sync.Mutex
	viewers []*viewer
	ended   bool

	// Access unit tracking (video).
	auStart bool      // the next video packet starts an access unit
	cur     []*packet // packets of the access unit being received
	curIDR  bool
	curGap  bool   // a packet of the current access unit is missing
	lastSeq uint16 // sequence number of the latest video packet
	haveSeq bool
	sps     []byte
	pps     []byte
	key     []*packet // the latest complete IDR access unit, SPS and PPS first
	lastTS  uint32    // timestamp of the latest video packet
	ring    [rtxRing]*packet

	// Counters read by Stats; the write path adds once per packet, not once
	// per viewer, so viewers do not contend on a shared cache line.
	in, fwd, dropped atomic.Uint64
}

func newForwarder(m *Metrics, hasVideo, hasAudio bool, sps, pps []byte, onKeyReq func()) *forwarder {
	return &forwarder{
		m: m, hasVideo: hasVideo, hasAudio: hasAudio, onKeyReq: onKeyReq,
		auStart: true, sps: sps, pps: pps, startedAt: time.Now(),
	}
}

// write forwards one packet to every viewer. pkt must not be changed by the
// caller afterwards.
func (f *forwarder) write(p *packet) {
	f.in.Add(1)
	f.m.PacketsIn.Add(1)
	f.mu.Lock()
	if f.ended {
		f.mu.Unlock()
		return
	}
	if p.video {
		f.track(p)
	}
	var sent, dropped uint64
	for _, v := range f.viewers {
		select {
		case v.q <- p:
			sent++
		default:
			dropped++
		}
	}
	f.mu.Unlock()
	if sent > 0 {
		f.fwd.Add(sent)
		f.m.PacketsForwarded.Add(sent)
	}
	if dropped > 0 {
		f.dropped.Add(dropped)
		f.m.PacketsDropped.Add(dropped)
	}
}

// track keeps the access-unit state and the keyframe cache. Called with mu.
func (f *forwarder) track(p *packet) {
	info := inspectH264(p.payload)
	gap := f.haveSeq && p.hdr.SequenceNumber != f.lastSeq+1
	f.lastSeq, f.haveSeq = p.hdr.SequenceNumber, true
	if f.auStart {
		f.cur = f.cur[:0]
		f.curIDR = false
		f.curGap = false
		gap = false
		p.auStart = true
		p.keyStart = info.idr || info.sps != nil
	}
	f.cur = append(f.cur, p)
	f.curIDR = f.curIDR || info.idr
	f.curGap = f.curGap || gap
	if info.sps != nil {
		f.sps = append(f.sps[:0:0], info.sps...)
	}
	if info.pps != nil {
		f.pps = append(f.pps[:0:0], info.pps...)
	}
	f.lastTS = p.hdr.Timestamp
	f.ring[p.hdr.SequenceNumber%rtxRing] = p
	f.auStart = p.hdr.Marker
	if !p.hdr.Marker || !f.curIDR || f.curGap {
		return // only a complete IDR access unit is worth caching
	}
	// A complete IDR access unit: cache it, with the parameter sets in front
	// when the source sent them out of band (SDP sprop-parameter-sets) or in
	// an earlier access unit.
	key := make([]*packet, 0, len(f.cur)+1)
	first := inspectH264(f.cur[0].payload)
	if first.sps == nil && f.sps != nil && f.pps != nil {
		h := f.cur[0].hdr
		h.Marker = false
		key = append(key, &packet{hdr: h, payload: stapA(f.sps, f.pps), video: true, auStart: true, keyStart: true})
	}
	f.key = append(key, f.cur...)
	f.cur = nil // the cache owns that backing array now
}

// add attaches a viewer whose PeerConnection is connected. It returns the
// cached keyframe to send first and the timestamp of the latest frame.
func (f *forwarder) add(v *viewer) ([]*packet, uint32, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return nil, 0, false
	}
	f.viewers = append(f.viewers, v)
	return f.key, f.lastTS, true
}

// remove detaches a viewer; it is a no-op when the viewer is not attached.
func (f *forwarder) remove(v *viewer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, w := range f.viewers {
		if w == v {
			last := len(f.viewers) - 1
			f.viewers[i] = f.viewers[last]
			f.viewers[last] = nil
			f.viewers = f.viewers[:last]
			return
		}
	}
}

// lookup returns the buffered video packet with source sequence number seq.
func (f *forwarder) lookup(seq uint16) *packet {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.ring[seq%rtxRing]
	if p == nil || p.hdr.SequenceNumber != seq {
		return nil
	}
	return p
}

// end closes every viewer's queue: viewers send what is queued and then
// close their PeerConnection, so their tracks end.
func (f *forwarder) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return
	}
	f.ended = true
	for _, v := range f.viewers {
		close(v.q)
	}
	f.viewers = nil
	f.key, f.cur = nil, nil
	f.ring = [rtxRing]*packet{}
}

func (f *forwarder) viewerCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.viewers)
}

func (f *forwarder) keyframeCached() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.key != nil
}

// requestKeyframe forwards a viewer's keyframe request to the source.
func (f *forwarder) requestKeyframe() {
	if f.onKeyReq != nil {
		f.onKeyReq()
	}
}
