package video

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// HandleWHEP answers a WHEP offer (draft-ietf-wish-whep section 4.1) for
// streamID with 201, the SDP answer and a session Location. The caller has
// authenticated viewer and decided it may watch. A stream owned by another
// node is answered with 307 to that node (see the package doc).
func (s *Server) HandleWHEP(w http.ResponseWriter, r *http.Request, streamID string, viewer Principal) {
	body, oc, err := s.readOffer(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if !oc.video || !oc.h264 {
		writeError(w, fmt.Errorf("%w: the offer has no H.264 video section; browsers must offer H.264 to watch", ErrUnsupportedCodec))
		return
	}
	kind, id, err := ParseStreamID(streamID)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ConnectTimeout+time.Second)
	defer cancel()
	st, owner, err := s.acquire(ctx, streamID, kind, id)
	if err != nil {
		if ctx.Err() != nil && r.Context().Err() == nil {
			err = fmt.Errorf("%w: no stream within %v", ErrCameraTimeout, s.cfg.ConnectTimeout)
		}
		writeError(w, err)
		return
	}
	if owner != "" {
		// 307 keeps method and body, so the client re-POSTs the offer.
		http.Redirect(w, r, owner+"/whep/"+url.PathEscape(streamID), http.StatusTemporaryRedirect)
		return
	}
	ss, answer, err := s.startViewer(st, body, oc, viewer, r.RemoteAddr)
	if err != nil {
		s.release(st)
		writeError(w, err)
		return
	}
	writeAnswer(w, "/whep/", streamID, ss.id, answer)
}

// startViewer creates the viewer's PeerConnection and its goroutine, which
// attaches to the forwarder once DTLS is up.
func (s *Server) startViewer(st *stream, offer []byte, oc offerCodecs, who Principal, remote string) (*session, string, error) {
	fwd := st.fwd
	if fwd.viewerCount() >= s.cfg.MaxViewersPerStream {
		return nil, "", fmt.Errorf("%w (%d)", ErrTooManyViewers, s.cfg.MaxViewersPerStream)
	}
	pc, err := s.viewAPI.NewPeerConnection(s.pcConfig())
	if err != nil {
		return nil, "", err
	}
	s.metrics.PeerConnections.Add(1)
	closePC := func() {
		_ = pc.Close()
		s.metrics.PeerConnections.Add(-1)
	}
	vt := newOutTrack(webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, "video", "kuzet")
	var at *outTrack
	if fwd.hasAudio && oc.audio && oc.opus {
		at = newOutTrack(webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, "audio", "kuzet")
	}
	fail := func(err error) (*session, string, error) {
		closePC()
		return nil, "", err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		return fail(fmt.Errorf("%w: %v", ErrBadSDP, err))
	}
	vs, err := pc.AddTrack(vt)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrUnsupportedCodec, err))
	}
	var as *webrtc.RTPSender
	if at != nil {
		if as, err = pc.AddTrack(at); err != nil {
			return fail(fmt.Errorf("%w: %v", ErrUnsupportedCodec, err))
		}
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrUnsupportedCodec, err))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(err)
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		return fail(fmt.Errorf("video: ICE gathering did not finish in 5s; check ICEServers"))
	}

	v := newViewer(s.cfg.ViewerQueue, vt, at)
	var once sync.Once
	var reason string
	v.stop = func(r string) {
		once.Do(func() { reason = r; close(v.done) })
	}
	connected := make(chan struct{})
	var connOnce sync.Once
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		switch state {
		case webrtc.PeerConnectionStateConnected:
			connOnce.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			v.stop("peer gone")
		}
	})
	ss := &session{id: newSessionID(), streamID: st.id, owner: who, pc: pc, viewer: v, stop: v.stop}
	if err := s.addSession(ss); err != nil {
		return fail(err)
	}
	ev := ViewEvent{SessionID: ss.id, StreamID: st.id, Viewer: who, Remote: remote, Start: time.Now()}
	s.audit(ev)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var rtcpWG sync.WaitGroup
		for _, snd := range []*webrtc.RTPSender{vs, as} {
			if snd != nil {
				rtcpWG.Add(1)
				go func() { defer rtcpWG.Done(); readRTCP(snd, v, fwd) }()
			}
		}
		s.runViewer(st, v, connected)
		v.stop("source ended") // no-op when a reason was already set
		closePC()
		rtcpWG.Wait()
		s.removeSession(ss.id)
		s.release(st)
		ev.End = time.Now()
		ev.Reason = reason
		s.audit(ev)
	}()
	return ss, pc.LocalDescription().SDP, nil
}

// runViewer waits for the connection, sends the cached keyframe and then
// forwards live packets until the viewer or the source goes away.
func (s *Server) runViewer(st *stream, v *viewer, connected <-chan struct{}) {
	fwd := st.fwd
	deadline := time.NewTimer(s.cfg.ICEFailedTimeout + 5*time.Second)
	defer deadline.Stop()
	select {
	case <-connected:
	case <-v.done:
		return
	case <-deadline.C:
		v.stop("no connection")
		return
	}
	select {
	case <-v.video.bound:
	case <-v.done:
		return
	case <-deadline.C:
		v.stop("no connection")
		return
	}
	key, lastTS, ok := fwd.add(v)
	if !ok {
		return
	}
	defer fwd.remove(v)
	s.metrics.Viewers.Add(1)
	defer s.metrics.Viewers.Add(-1)
	fwd.requestKeyframe()
	v.start(key, lastTS)
	for {
		select {
		case p, ok := <-v.q:
			if !ok {
				return
			}
			v.send(p)
		case seq := <-v.nack:
			v.retransmit(fwd, seq)
			s.metrics.Retransmits.Add(1)
		case <-v.done:
			return
		}
	}
}

func (s *Server) audit(ev ViewEvent) {
	if ev.End.IsZero() {
		s.log.Info("view started", "session", ev.SessionID, "stream", ev.StreamID, "viewer", ev.Viewer.Subject, "remote", ev.Remote)
	} else {
		s.log.Info("view ended", "session", ev.SessionID, "stream", ev.StreamID, "viewer", ev.Viewer.Subject,
			"duration", ev.End.Sub(ev.Start).Round(time.Millisecond), "reason", ev.Reason)
	}
	if s.cfg.OnView != nil {
		s.cfg.OnView(ev)
	}
}
