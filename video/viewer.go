package video

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// outTrack is a webrtc.TrackLocal written by exactly one viewer goroutine.
// Unlike webrtc.TrackLocalStaticRTP it does not marshal per binding or take
// a lock per packet: the viewer writes the shared payload with its own
// rewritten header straight into the SRTP writer.
type outTrack struct {
	id, streamID string
	kind         webrtc.RTPCodecType
	mime         string
	b            atomic.Pointer[binding]
	bound        chan struct{}
	once         sync.Once
}

type binding struct {
	w    webrtc.TrackLocalWriter
	ssrc uint32
	pt   uint8
}

func newOutTrack(kind webrtc.RTPCodecType, mime, id, streamID string) *outTrack {
	return &outTrack{id: id, streamID: streamID, kind: kind, mime: mime, bound: make(chan struct{})}
}

func (t *outTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var pick *webrtc.RTPCodecParameters
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, t.mime) {
			continue
		}
		c := c
		// Prefer packetization-mode=1: it is what the forwarded FU-A and
		// STAP-A packets need (RFC 6184 section 6.3).
		if pick == nil || strings.Contains(c.SDPFmtpLine, "packetization-mode=1") && !strings.Contains(pick.SDPFmtpLine, "packetization-mode=1") {
			pick = &c
		}
	}
	if pick == nil {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	t.b.Store(&binding{w: ctx.WriteStream(), ssrc: uint32(ctx.SSRC()), pt: uint8(pick.PayloadType)})
	t.once.Do(func() { close(t.bound) })
	return *pick, nil
}

func (t *outTrack) Unbind(webrtc.TrackLocalContext) error { t.b.Store(nil); return nil }
func (t *outTrack) ID() string                            { return t.id }
func (t *outTrack) RID() string                           { return "" }
func (t *outTrack) StreamID() string                      { return t.streamID }
func (t *outTrack) Kind() webrtc.RTPCodecType             { return t.kind }

// viewer is one WHEP session. Its goroutine (run) is the only writer of its
// tracks and owns the sequence/timestamp rewriting state below.
type viewer struct {
	q    chan *packet  // filled by the forwarder, closed when the source ends
	nack chan uint16   // viewer sequence numbers to retransmit
	done chan struct{} // closed by stop
	stop func(reason string)

	video, audio *outTrack

	// Rewriting state (owned by run). Outgoing numbers = source numbers +
	// offset, so a packet the queue dropped shows as a gap the browser can
	// NACK, and a retransmission maps back to the shared ring.
	vStarted, aStarted bool
	vSeqOff, aSeqOff   uint16
	vTSOff, aTSOff     uint32
	initial            []*packet // cached keyframe that was sent first
	initBase           uint16    // viewer sequence number of initial[0]
	joinTS             uint32

	sent, retransmits uint64
	firstKey          chan struct{} // closed when the first keyframe packet went out
	firstKeyOnce      sync.Once
}

func newViewer(queue int, video, audio *outTrack) *viewer {
	return &viewer{
		q:        make(chan *packet, queue),
		nack:     make(chan uint16, 64),
		done:     make(chan struct{}),
		video:    video,
		audio:    audio,
		firstKey: make(chan struct{}),
	}
}

// start sends the cached keyframe (if any) with fresh sequence numbers and a
// timestamp just before the live frames, so the browser's decoder starts at
// once and the following live packets continue the same numbering.
func (v *viewer) start(key []*packet, lastTS uint32) {
	v.joinTS = lastTS
	v.initBase = uint16(rand.Uint32())
	v.initial = key
	b := v.video.b.Load()
	if b == nil || len(key) == 0 {
		return
	}
	tsBase := rand.Uint32()
	v.vTSOff = tsBase - lastTS
	for i, p := range key {
		h := p.hdr
		h.SSRC, h.PayloadType = b.ssrc, b.pt
		h.SequenceNumber = v.initBase + uint16(i)
		h.Timestamp = tsBase
		h.Marker = i == len(key)-1
		if _, err := b.w.WriteRTP(&h, p.payload); err == nil {
			v.sent++
		}
	}
	v.firstKeyOnce.Do(func() { close(v.firstKey) })
}

// send forwards one live packet, starting the video at an access unit
// boundary (after the cached keyframe) or at a keyframe (without one).
func (v *viewer) send(p *packet) {
	if p.video {
		if !v.vStarted {
			switch {
			case len(v.initial) > 0 && p.auStart:
				v.vSeqOff = v.initBase + uint16(len(v.initial)) - p.hdr.SequenceNumber
			case len(v.initial) == 0 && p.keyStart:
				v.vSeqOff = v.initBase - p.hdr.SequenceNumber
				v.vTSOff = rand.Uint32() - p.hdr.Timestamp
				v.firstKeyOnce.Do(func() { close(v.firstKey) })
			default:
				return
			}
			v.vStarted = true
		}
		v.write(v.video, p, v.vSeqOff, v.vTSOff)
		return
	}
	if v.audio == nil || (v.video != nil && !v.vStarted) {
		return
	}
	if !v.aStarted {
		v.aSeqOff = uint16(rand.Uint32()) - p.hdr.SequenceNumber
		v.aTSOff = rand.Uint32() - p.hdr.Timestamp
		v.aStarted = true
	}
	v.write(v.audio, p, v.aSeqOff, v.aTSOff)
}

func (v *viewer) write(t *outTrack, p *packet, seqOff uint16, tsOff uint32) {
	b := t.b.Load()
	if b == nil {
		return
	}
	h := p.hdr
	h.SSRC, h.PayloadType = b.ssrc, b.pt
	h.SequenceNumber += seqOff
	h.Timestamp += tsOff
	if _, err := b.w.WriteRTP(&h, p.payload); err == nil {
		v.sent++
	}
}

// retransmit answers a NACK for viewer sequence number seq from the cached
// keyframe or the stream's shared ring (RFC 4585 section 6.2.1).
//
// Retransmissions are capped at a tenth of the packets sent to the viewer
// (plus a start allowance): a viewer losing more than that is overloaded,
// and answering every NACK would only add to the load that causes the loss.
func (v *viewer) retransmit(f *forwarder, seq uint16) {
	if v.retransmits*10 > v.sent+500 {
		return
	}
	if d := seq - v.initBase; int(d) < len(v.initial) {
		p := v.initial[d]
		b := v.video.b.Load()
		if b == nil {
			return
		}
		h := p.hdr
		h.SSRC, h.PayloadType = b.ssrc, b.pt
		h.SequenceNumber = seq
		h.Timestamp = v.joinTS + v.vTSOff
		h.Marker = int(d) == len(v.initial)-1
		_, _ = b.w.WriteRTP(&h, p.payload)
		v.retransmits++
		return
	}
	if !v.vStarted {
		return
	}
	if p := f.lookup(seq - v.vSeqOff); p != nil {
		v.write(v.video, p, v.vSeqOff, v.vTSOff)
		v.retransmits++
	}
}

// readRTCP turns the viewer's feedback into retransmissions and keyframe
// requests until the sender is closed.
func readRTCP(s *webrtc.RTPSender, v *viewer, f *forwarder) {
	buf := make([]byte, 1500)
	for {
		n, _, err := s.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				for _, pair := range p.Nacks {
					for _, seq := range pair.PacketList() {
						select {
						case v.nack <- seq:
						default:
						}
					}
				}
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				f.requestKeyframe()
			}
		}
	}
}

var errSourceEnded = errors.New("source ended")

// cloneHeader makes a packet header safe to share: extensions are dropped
// because their ids were negotiated with the source, not with the viewers.
func cloneHeader(h *rtp.Header) rtp.Header {
	c := *h
	c.Extension = false
	c.Extensions = nil
	c.ExtensionProfile = 0
	c.Padding = false
	c.PaddingSize = 0
	c.CSRC = nil
	return c
}
