package video

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// Metrics are the Server's counters; the web layer exports them as
// Prometheus collectors. All fields are updated atomically.
type Metrics struct {
	PacketsIn        atomic.Uint64 // RTP packets received from sources
	PacketsForwarded atomic.Uint64 // packets queued to viewers (one per viewer)
	PacketsDropped   atomic.Uint64 // packets dropped because a viewer's queue was full
	Retransmits      atomic.Uint64 // packets resent from the shared ring after a NACK
	KeyframeRequests atomic.Uint64 // PLIs sent to publishers
	Viewers          atomic.Int64  // attached viewers
	Publishers       atomic.Int64  // WHIP publishers
	Streams          atomic.Int64  // live streams on this node
	PeerConnections  atomic.Int64  // open PeerConnections (viewers + publishers)
	RTSPReconnects   atomic.Uint64
	RTSPPacketsLost  atomic.Uint64 // packets missing in cameras' RTP sequence numbers
	TrickleFragments atomic.Uint64 // trickle ICE PATCHes accepted
}

// StreamInfo is a snapshot of one stream.
type StreamInfo struct {
	ID             string
	Viewers        int
	PacketsIn      uint64
	Forwarded      uint64
	Dropped        uint64
	KeyframeCached bool
	Since          time.Time
}

// Server owns every stream and session on this node. mu guards streams and
// sessions; a forwarder's own mutex is never taken while mu is held by the
// same goroutine for longer than a map operation (lock order: Server.mu,
// then forwarder.mu).
type Server struct {
	cfg     Config
	log     *slog.Logger
	reg     streamRegistry
	pubAPI  *webrtc.API
	viewAPI *webrtc.API
	udpConn *batchConn
	udpMux  *ice.UDPMuxDefault
	metrics Metrics

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	streams  map[string]*stream
	sessions map[string]*session
	closed   bool
}

// stream is one live stream on this node.
type stream struct {
	id    string
	kind  StreamKind
	ready chan struct{} // closed when fwd or err is set
	fwd   *forwarder
	err   error

	// Under Server.mu:
	viewers int
	grace   *time.Timer
	stop    context.CancelFunc // stops the source
	pub     *session           // WHIP publisher, for unit streams
}

// session is one WHIP or WHEP resource.
type session struct {
	id       string
	streamID string
	owner    Principal // who created it; only they may DELETE it
	pc       *webrtc.PeerConnection
	viewer   *viewer // nil for a publisher
	stop     func(reason string)
}

// New validates cfg and prepares the WebRTC stack. If it fails half way it
// releases what it opened.
func New(cfg Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: c, log: c.Logger.With("component", "video"), streams: map[string]*stream{}, sessions: map[string]*session{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if c.Redis != nil {
		s.reg = &redisRegistry{rdb: c.Redis, self: c.AdvertiseURL, ttl: c.StreamTTL}
	} else {
		s.reg = memRegistry{}
	}
	if err := s.newAPIs(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Metrics returns the live counters.
func (s *Server) Metrics() *Metrics { return &s.metrics }

// UDPAddr is the ICE UDP mux address, or nil without a mux.
func (s *Server) UDPAddr() net.Addr {
	if s.udpConn == nil {
		return nil
	}
	return s.udpConn.LocalAddr()
}

// Streams returns a snapshot of the live streams.
func (s *Server) Streams() []StreamInfo {
	s.mu.Lock()
	list := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		list = append(list, st)
	}
	s.mu.Unlock()
	var out []StreamInfo
	for _, st := range list {
		select {
		case <-st.ready:
		default:
			continue
		}
		if st.fwd == nil {
			continue
		}
		f := st.fwd
		out = append(out, StreamInfo{ID: st.id, Viewers: f.viewerCount(), PacketsIn: f.in.Load(), Forwarded: f.fwd.Load(),
			Dropped: f.dropped.Load(), KeyframeCached: f.keyframeCached(), Since: f.startedAt})
	}
	return out
}

// SessionOwner returns the principal that created a WHIP or WHEP session
// on streamID, so the web layer can let only that principal end it.
func (s *Server) SessionOwner(streamID, sessionID string) (Principal, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[sessionID]
	if ss == nil || ss.streamID != streamID {
		return Principal{}, false
	}
	return ss.owner, true
}

// Live reports whether streamID has a live source on this node.
func (s *Server) Live(streamID string) bool {
	s.mu.Lock()
	st := s.streams[streamID]
	s.mu.Unlock()
	if st == nil {
		return false
	}
	select {
	case <-st.ready:
		return st.fwd != nil && st.err == nil
	default:
		return false
	}
}

// LiveAnywhere reports whether streamID is live on this node or, with the
// Redis registry, on another node of the cluster.
func (s *Server) LiveAnywhere(ctx context.Context, streamID string) (bool, error) {
	if s.Live(streamID) {
		return true, nil
	}
	owner, err := s.reg.lookup(ctx, streamID)
	if err != nil {
		return false, err
	}
	return owner != "", nil
}

// Run refreshes this node's stream registry entries until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.StreamTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return ErrClosed
		case <-t.C:
			s.mu.Lock()
			ids := make([]string, 0, len(s.streams))
			for id := range s.streams {
				ids = append(ids, id)
			}
			s.mu.Unlock()
			rctx, cancel := context.WithTimeout(ctx, s.cfg.StreamTTL/3)
			if err := s.reg.refresh(rctx, ids); err != nil {
				s.log.Warn("stream registry heartbeat failed", "err", err)
			}
			cancel()
		}
	}
}

// Close ends every session and source, waits for their goroutines and
// closes the UDP mux. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	var stops []context.CancelFunc
	for _, st := range s.streams {
		if st.stop != nil {
			stops = append(stops, st.stop)
		}
		if st.grace != nil {
			st.grace.Stop()
		}
	}
	s.mu.Unlock()
	s.cancel()
	for _, ss := range sessions {
		ss.stop("shutdown")
	}
	for _, stop := range stops {
		stop()
	}
	s.wg.Wait()
	if s.udpMux != nil {
		_ = s.udpMux.Close()
	}
	if s.udpConn != nil {
		_ = s.udpConn.Close()
	}
	return nil
}

func newSessionID() string { return uuid.Must(uuid.NewV7()).String() }

// addSession registers a session unless the server is closed.
func (s *Server) addSession(ss *session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.sessions[ss.id] = ss
	return nil
}

func (s *Server) removeSession(id string) {
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
}

// acquire returns the ready stream for a viewer and counts the viewer. For
// a camera the first viewer starts the RTSP pull. redirect is set when
// another node owns the stream.
func (s *Server) acquire(ctx context.Context, id string, kind StreamKind, camID string) (st *stream, redirect string, err error) {
	var cam Camera
	if kind == KindCamera {
		var ok bool
		var err error
		if cam, ok, err = s.cfg.Cameras.Fetch(ctx, camID); err != nil {
			return nil, "", err
		} else if !ok {
			return nil, "", fmt.Errorf("%w %q: import it into the camera registry first", ErrUnknownCamera, camID)
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, "", ErrClosed
	}
	st = s.streams[id]
	if st == nil {
		s.mu.Unlock()
		if kind == KindUnit {
			owner, err := s.reg.lookup(ctx, id)
			if err != nil {
				return nil, "", err
			}
			if owner != "" {
				return nil, owner, nil
			}
			return nil, "", fmt.Errorf("%w: %s has no publisher on this node", ErrStreamNotLive, id)
		}
		owner, err := s.reg.claim(ctx, id)
		if err != nil {
			return nil, "", err
		}
		if owner != "" {
			return nil, owner, nil
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, "", ErrClosed
		}
		if st = s.streams[id]; st == nil {
			st = &stream{id: id, kind: kind, ready: make(chan struct{})}
			sctx, cancel := context.WithCancel(s.ctx)
			st.stop = cancel
			s.streams[id] = st
			s.metrics.Streams.Add(1)
			s.wg.Add(1)
			go s.runCamera(sctx, st, cam)
		}
	}
	st.viewers++
	if st.grace != nil {
		st.grace.Stop()
		st.grace = nil
	}
	s.mu.Unlock()

	select {
	case <-st.ready:
	case <-ctx.Done():
		s.release(st)
		return nil, "", ctx.Err()
	}
	if st.err != nil {
		s.release(st)
		return nil, "", st.err
	}
	return st, "", nil
}

// release uncounts a viewer; the last viewer of a camera starts the grace
// period after which the RTSP pull stops.
func (s *Server) release(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.viewers--
	if st.viewers > 0 || st.kind != KindCamera || s.closed || s.streams[st.id] != st {
		return
	}
	st.grace = time.AfterFunc(s.cfg.GracePeriod, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if st.viewers == 0 && s.streams[st.id] == st && st.grace != nil {
			st.grace = nil
			st.stop()
		}
	})
}

// dropStream removes st from the map and the registry. Called by the
// source goroutine when it ends.
func (s *Server) dropStream(st *stream) {
	s.mu.Lock()
	if s.streams[st.id] == st {
		delete(s.streams, st.id)
		s.metrics.Streams.Add(-1)
	}
	if st.grace != nil {
		st.grace.Stop()
		st.grace = nil
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.reg.release(ctx, st.id); err != nil {
		s.log.Warn("stream registry release failed", "stream", st.id, "err", err)
	}
}

// fail marks a stream that never became ready.
func (st *stream) fail(err error) {
	st.err = err
	close(st.ready)
}

var errStopped = errors.New("stopped")
