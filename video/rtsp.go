package video

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// runCamera pulls one camera over RTSP for as long as the stream exists:
// the first connection decides the viewer's answer (ready or a clear
// error); after a loss it reconnects with exponential backoff while the
// viewers stay attached, and ends the stream for them after
// SourceLostTimeout. ctx is cancelled by the grace timer or Close.
func (s *Server) runCamera(ctx context.Context, st *stream, cam Camera) {
	defer s.wg.Done()
	log := s.log.With("stream", st.id, "camera", cam)
	relay := &rtspRelay{seq: uint16(rand.Uint32())}
	fwd := newForwarder(&s.metrics, true, false, nil, nil, nil)
	relay.fwd = fwd

	target := cam.RTSPURL
	if cam.Codec == "h265" && cam.SubstreamURL != "" {
		target = cam.SubstreamURL
	}
	c, err := s.dialCamera(ctx, target, relay)
	if errors.Is(err, ErrCameraCodec) && cam.SubstreamURL != "" && target != cam.SubstreamURL {
		target = cam.SubstreamURL
		c, err = s.dialCamera(ctx, target, relay)
	}
	if err != nil {
		err = fmt.Errorf("camera %s: %w", cam.ID, err)
		log.Warn("camera pull failed", "err", err)
		st.fail(err)
		s.dropStream(st)
		return
	}
	st.fwd = fwd
	close(st.ready)
	log.Info("camera pull started")
	defer func() {
		s.dropStream(st)
		fwd.end()
		log.Info("camera pull stopped")
	}()
	for {
		err := c.Wait()
		c.Close()
		if ctx.Err() != nil {
			return
		}
		log.Warn("camera connection lost; reconnecting", "err", redactErr(err, target))
		lost := time.Now()
		backoff := s.cfg.ReconnectMin
		for {
			wait := min(backoff, s.cfg.SourceLostTimeout-time.Since(lost))
			if wait <= 0 {
				log.Warn("camera did not come back; ending the stream for its viewers", "after", s.cfg.SourceLostTimeout)
				return
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, s.cfg.ReconnectMax)
			relay.resync = true
			if c, err = s.dialCamera(ctx, target, relay); err == nil {
				s.metrics.RTSPReconnects.Add(1)
				log.Info("camera reconnected")
				break
			}
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// dialCamera connects, describes, sets up the H.264 media and plays. The
// returned client stops when ctx ends.
func (s *Server) dialCamera(ctx context.Context, raw string, relay *rtspRelay) (*gortsplib.Client, error) {
	u, err := base.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: bad RTSP URL %s", ErrCameraUnreachable, RedactURL(raw))
	}
	c := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		ReadTimeout:  s.cfg.ConnectTimeout,
		WriteTimeout: s.cfg.ConnectTimeout,
		// gortsplib logs these with the standard logger by default.
		OnPacketsLost: func(lost uint64) { s.metrics.RTSPPacketsLost.Add(lost) },
		OnDecodeError: func(err error) { s.log.Debug("RTSP decode error", "err", redactErr(err, raw)) },
	}
	switch s.cfg.RTSPTransport {
	case "tcp":
		p := gortsplib.ProtocolTCP
		c.Protocol = &p
	case "udp":
		p := gortsplib.ProtocolUDP
		c.Protocol = &p
	}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCameraUnreachable, redactErr(err, raw))
	}
	// Close the client when ctx ends or the first connection takes too long.
	dialCtx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	stopTimeout := context.AfterFunc(dialCtx, c.Close)
	fail := func(err error) (*gortsplib.Client, error) {
		timedOut := dialCtx.Err() == context.DeadlineExceeded
		stopTimeout()
		cancel()
		c.Close()
		if timedOut && !errors.Is(err, ErrCameraCodec) {
			return nil, fmt.Errorf("%w: no answer within %v", ErrCameraTimeout, s.cfg.ConnectTimeout)
		}
		return nil, err
	}
	desc, _, err := c.Describe(u)
	if err != nil {
		return fail(fmt.Errorf("%w: DESCRIBE: %v", ErrCameraUnreachable, redactErr(err, raw)))
	}
	var h264 *format.H264
	medi := desc.FindFormat(&h264)
	if medi == nil {
		var h265 *format.H265
		if desc.FindFormat(&h265) != nil {
			return fail(fmt.Errorf("%w: the camera sends H.265, which browsers cannot play over WebRTC; configure an H.264 substream URL for it", ErrCameraCodec))
		}
		return fail(fmt.Errorf("%w: the camera offers no H.264 video track; configure an H.264 (sub)stream", ErrCameraCodec))
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return fail(fmt.Errorf("%w: SETUP: %v", ErrCameraUnreachable, redactErr(err, raw)))
	}
	relay.fwd.setParams(h264.SPS, h264.PPS)
	c.OnPacketRTP(medi, h264, relay.onPacket)
	if _, err := c.Play(nil); err != nil {
		return fail(fmt.Errorf("%w: PLAY: %v", ErrCameraUnreachable, redactErr(err, raw)))
	}
	// From here on the client lives until ctx ends or the camera goes away.
	stopTimeout()
	cancel()
	context.AfterFunc(ctx, c.Close)
	return c, nil
}

// rtspRelay turns a camera's RTP packets into forwarder packets. It is
// used by one gortsplib reader goroutine at a time; its numbering carries
// across reconnects so viewers see one continuous stream.
type rtspRelay struct {
	fwd    *forwarder
	seq    uint16
	tsOff  uint32
	lastTS uint32
	resync bool
	srcSeq uint16 // the camera's latest sequence number
}

func (r *rtspRelay) onPacket(pkt *rtp.Packet) {
	if r.resync {
		// A new connection restarts the camera's timestamps: continue ours
		// one 25 fps frame after the last one sent.
		r.tsOff = r.lastTS + 3600 - pkt.Timestamp
		r.resync = false
	} else if lost := pkt.SequenceNumber - r.srcSeq - 1; lost != 0 && lost < 1000 {
		// Packets the camera's path lost stay a gap in our numbering, so
		// viewers and the keyframe cache see that something is missing.
		r.seq += lost
	}
	r.srcSeq = pkt.SequenceNumber
	ts := pkt.Timestamp + r.tsOff
	r.lastTS = ts
	chunks := splitH264(pkt.Payload, maxRTPPayload)
	for i, c := range chunks {
		h := cloneHeader(&pkt.Header)
		h.SequenceNumber = r.seq
		r.seq++
		h.Timestamp = ts
		h.Marker = pkt.Marker && i == len(chunks)-1
		if len(chunks) == 1 {
			c = bytes.Clone(c) // gortsplib may reuse its read buffer
		}
		r.fwd.write(&packet{hdr: h, payload: c, video: true})
	}
}

// setParams records the SDP's sprop-parameter-sets, used when the camera
// sends IDR frames without in-band SPS/PPS.
func (f *forwarder) setParams(sps, pps []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if sps != nil && f.sps == nil {
		f.sps = bytes.Clone(sps)
	}
	if pps != nil && f.pps == nil {
		f.pps = bytes.Clone(pps)
	}
}

// redactErr removes the URL's password and user name from an error text.
func redactErr(err error, raw string) string {
	if err == nil {
		return "closed"
	}
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
		if n := u.User.Username(); n != "" {
			msg = strings.ReplaceAll(msg, n, "xxxxx")
		}
	}
	return msg
}
