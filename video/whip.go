package video

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// HandleWHIP answers a WHIP offer (RFC 9725 section 4.2) from a body-cam
// or officer terminal publishing streamID, which must be "unit:<id>" with
// <id> the unit pub is bound to. H.264 video is required, audio must be
// Opus. The answer is 201 with the SDP answer and the session Location.
func (s *Server) HandleWHIP(w http.ResponseWriter, r *http.Request, streamID string, pub Principal) {
	body, oc, err := s.readOffer(r)
	if err != nil {
		writeError(w, err)
		return
	}
	kind, id, err := ParseStreamID(streamID)
	if err != nil {
		writeError(w, err)
		return
	}
	if kind != KindUnit {
		writeError(w, fmt.Errorf("%w: only unit:<id> streams are published over WHIP; cameras are pulled over RTSP", ErrBadStreamID))
		return
	}
	if pub.UnitID != id {
		writeError(w, fmt.Errorf("%w: %q is bound to unit %q, not %q", ErrForbidden, pub.Subject, pub.UnitID, id))
		return
	}
	switch {
	case !oc.video || !oc.h264:
		writeError(w, fmt.Errorf("%w: WHIP needs an H.264 video section (browsers cannot play other codecs without transcoding); configure the encoder for H.264", ErrUnsupportedCodec))
		return
	case oc.audio && !oc.opus:
		writeError(w, fmt.Errorf("%w: audio must be Opus", ErrUnsupportedCodec))
		return
	}
	ss, answer, err := s.startPublisher(r.Context(), streamID, body, oc, pub)
	if err != nil {
		writeError(w, err)
		return
	}
	writeAnswer(w, "/whip/", streamID, ss.id, answer)
}

func (s *Server) startPublisher(ctx context.Context, streamID string, offer []byte, oc offerCodecs, pub Principal) (*session, string, error) {
	st := &stream{id: streamID, kind: KindUnit, ready: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, "", ErrClosed
	}
	if s.streams[streamID] != nil {
		s.mu.Unlock()
		return nil, "", fmt.Errorf("%w: %s; DELETE the old session first", ErrStreamBusy, streamID)
	}
	s.streams[streamID] = st
	s.metrics.Streams.Add(1)
	s.mu.Unlock()
	abort := func(err error) (*session, string, error) {
		st.fail(err)
		s.dropStream(st)
		return nil, "", err
	}
	owner, err := s.reg.claim(ctx, streamID)
	if err != nil {
		return abort(err)
	}
	if owner != "" {
		// Not dropStream: that would release the other node's key.
		s.mu.Lock()
		delete(s.streams, streamID)
		s.metrics.Streams.Add(-1)
		s.mu.Unlock()
		err := fmt.Errorf("%w: %s is published on %s", ErrStreamBusy, streamID, owner)
		st.fail(err)
		return nil, "", err
	}

	pc, err := s.pubAPI.NewPeerConnection(s.pcConfig())
	if err != nil {
		return abort(err)
	}
	s.metrics.PeerConnections.Add(1)
	closePC := func() {
		_ = pc.Close()
		s.metrics.PeerConnections.Add(-1)
	}
	var videoSSRC atomic.Uint32
	var lastPLI atomic.Int64
	pli := func() {
		now := time.Now().UnixNano()
		last := lastPLI.Load()
		if now-last < int64(s.cfg.PLIInterval) || !lastPLI.CompareAndSwap(last, now) {
			return
		}
		if ssrc := videoSSRC.Load(); ssrc != 0 {
			if pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}) == nil {
				s.metrics.KeyframeRequests.Add(1)
			}
		}
	}
	fwd := newForwarder(&s.metrics, true, oc.audio, nil, nil, pli)
	var readers sync.WaitGroup
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		video := tr.Kind() == webrtc.RTPCodecTypeVideo
		if video {
			videoSSRC.Store(uint32(tr.SSRC()))
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				pkt, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				fwd.write(&packet{hdr: cloneHeader(&pkt.Header), payload: pkt.Payload, video: video})
			}
		}()
	})
	done := make(chan struct{})
	var once sync.Once
	var reason string
	stop := func(r string) { once.Do(func() { reason = r; close(done) }) }
	connected := make(chan struct{})
	var connOnce sync.Once
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		switch state {
		case webrtc.PeerConnectionStateConnected:
			connOnce.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			stop("peer gone")
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		closePC()
		return abort(fmt.Errorf("%w: %v", ErrBadSDP, err))
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		closePC()
		return abort(fmt.Errorf("%w: %v", ErrUnsupportedCodec, err))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		closePC()
		return abort(err)
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		closePC()
		return abort(fmt.Errorf("video: ICE gathering did not finish in 5s; check ICEServers"))
	}
	ss := &session{id: newSessionID(), streamID: streamID, owner: pub, pc: pc, stop: stop}
	if err := s.addSession(ss); err != nil {
		closePC()
		return abort(err)
	}
	st.fwd = fwd
	s.mu.Lock()
	st.stop = func() { stop("shutdown") }
	s.mu.Unlock()
	close(st.ready)
	s.metrics.Publishers.Add(1)
	log := s.log.With("stream", streamID, "session", ss.id, "publisher", pub.Subject)
	log.Info("publisher started")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(s.cfg.ICEFailedTimeout + 5*time.Second)
		select {
		case <-connected:
			t.Stop()
			<-done
		case <-done:
			t.Stop()
		case <-t.C:
			stop("no connection")
		}
		// Order: stop accepting viewers (end), then tear down the peer.
		s.dropStream(st)
		fwd.end()
		closePC()
		readers.Wait()
		s.removeSession(ss.id)
		s.metrics.Publishers.Add(-1)
		log.Info("publisher ended", "reason", reason)
	}()
	return ss, pc.LocalDescription().SDP, nil
}
