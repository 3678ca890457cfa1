package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/internal/auth"
)

// The event stream protocol (GET /api/v1/stream):
//
//  1. The client authenticates: an Authorization: Bearer header on the
//     upgrade request, or, from a browser, a first message
//     {"type":"auth","token":"..."} within 10 s.
//  2. Without ?after=N the server sends {"type":"snapshot","seq":S,...} with
//     what the client's role may see, then every event after S.
//  3. With ?after=N (the last seq the client saw), the server sends the
//     events after N it missed, {"type":"replayed","seq":S}, then live
//     events. If N is too far behind, it sends a snapshot instead.
//  4. Each event is the journal record's JSON: {"seq","type","agg",...}.
//
// A client whose queue passes ClientQueue bytes, or that does not take a
// write within WriteTimeout, is disconnected with close code 4008; it
// reconnects with ?after= and loses nothing.
const (
	maxReplay     = 50_000
	sendSlots     = 8192
	authTimeout   = 10 * time.Second
	pingInterval  = 25 * time.Second
	readTimeout   = 60 * time.Second
	maxClientRead = 64 << 10

	closeSlow = 4008
	closeAuth = 4401
)

// Hub fans journal events out to WebSocket clients.
type Hub struct {
	s *Server

	mu      sync.Mutex // guards clients, closed, and every client's paused/backlog
	clients map[*client]struct{}
	closed  bool
	writers sync.WaitGroup
}

func newHub(s *Server) *Hub {
	return &Hub{s: s, clients: map[*client]struct{}{}}
}

type message struct {
	data []byte
	at   time.Time // when the hub queued it
}

type client struct {
	hub  *Hub
	conn *websocket.Conn
	p    auth.Principal
	send chan message

	queued atomic.Int64 // bytes waiting in send
	from   uint64       // events with seq <= from are already covered

	paused       bool // while replaying: live events wait in backlog
	backlog      []message
	backlogBytes int

	done      chan struct{}
	closeOnce sync.Once
	closeCode int
	closeText string
}

// publish is the dispatch listener: called for every applied record, in
// order, with the state right after it.
func (h *Hub) publish(r journalRecord, st *dispatch.State) {
	m := message{data: r.Body, at: time.Now()}
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		if r.Seq <= c.from || !visible(c.p, r, st) {
			continue
		}
		c.enqueueLocked(m)
	}
}

// visible decides whether a principal may see an event.
func visible(p auth.Principal, r journalRecord, st *dispatch.State) bool {
	kind, id, _ := strings.Cut(r.Aggregate, ":")
	switch p.Role {
	case auth.RoleCallTaker, auth.RoleDispatcher, auth.RoleSupervisor, auth.RoleViewer:
		// Video audit records (who watched what, from where) are for
		// supervisors.
		return kind != "view" || p.Role == auth.RoleSupervisor
	case auth.RoleAdmin:
		return kind == "unit"
	case auth.RoleOfficer, auth.RoleDevice:
		switch kind {
		case "unit":
			return id == p.UnitID
		case "incident":
			in := st.Incidents[id]
			return in != nil && assignedEver(in, p.UnitID)
		case "alert":
			a := st.Alerts[id]
			return a != nil && a.UnitID == p.UnitID
		}
	}
	return false
}

// enqueueLocked queues a message or cuts the client off. Caller holds h.mu.
func (c *client) enqueueLocked(m message) {
	limit := int64(c.hub.s.cfg.ClientQueue)
	if c.paused {
		c.backlog = append(c.backlog, m)
		c.backlogBytes += len(m.data)
		if int64(c.backlogBytes) > limit {
			c.cutOff(closeSlow, "queue_full", "too far behind; reconnect with ?after=<last seq>")
		}
		return
	}
	if c.queued.Load()+int64(len(m.data)) > limit {
		c.cutOff(closeSlow, "queue_full", "too far behind; reconnect with ?after=<last seq>")
		return
	}
	select {
	case c.send <- m:
		c.queued.Add(int64(len(m.data)))
	default:
		c.cutOff(closeSlow, "queue_full", "too far behind; reconnect with ?after=<last seq>")
	}
}

// cutOff ends the client; the writer sends the close frame. reason labels
// the metric ("" for a normal end).
func (c *client) cutOff(code int, reason, text string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeText = code, text
		if reason != "" {
			c.hub.s.metrics.wsCutOff.WithLabelValues(reason).Inc()
		}
		close(c.done)
	})
}

func (h *Hub) add(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.clients[c] = struct{}{}
	h.s.metrics.wsClients.Inc()
	return true
}

func (h *Hub) remove(c *client) {
	h.mu.Lock()
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		h.s.metrics.wsClients.Dec()
	}
	h.mu.Unlock()
}

// resume moves the backlog collected during replay into the queue.
func (h *Hub) resume(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c.paused = false
	backlog := c.backlog
	c.backlog, c.backlogBytes = nil, 0
	for _, m := range backlog {
		c.enqueueLocked(m)
	}
}

// close tells every client the server is going away, lets the writers send
// what is queued, and waits for them until ctx ends.
func (h *Hub) close(ctx context.Context) {
	h.mu.Lock()
	h.closed = true
	for c := range h.clients {
		c.cutOff(websocket.CloseGoingAway, "", "server restarting; reconnect with ?after=<last seq>")
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.writers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser: browsers always send Origin on WebSocket
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return s.origins[strings.ToLower(u.Scheme+"://"+u.Host)]
}

// stream serves GET /api/v1/stream.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	var after uint64
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.writeError(w, r, errorf(http.StatusBadRequest, "bad_after", "after must be the sequence number of the last event you saw"))
			return
		}
		after = n
	}
	conn, p, ok := s.upgradeAuthenticated(w, r, "event stream", maxClientRead)
	if !ok {
		return
	}
	c := &client{hub: s.hub, conn: conn, p: p, send: make(chan message, sendSlots), done: make(chan struct{})}
	s.serveClient(r.Context(), c, after)
}

// upgradeAuthenticated authenticates a WebSocket request (Bearer header, or
// from a browser a first message {"type":"auth","token"}), checks its
// Origin, and upgrades it. On failure it has answered the client itself.
func (s *Server) upgradeAuthenticated(w http.ResponseWriter, r *http.Request, what string, readLimit int64) (*websocket.Conn, auth.Principal, bool) {
	var (
		p      auth.Principal
		headed = bearer(r) != ""
	)
	if headed {
		var ok bool
		if p, ok = s.authenticate(w, r); !ok {
			return nil, p, false
		}
	}
	if !s.checkOrigin(r) {
		s.log.Warn("WebSocket refused: origin not allowed", "stream", what, "origin", r.Header.Get("Origin"), "host", r.Host)
		s.writeError(w, r, errorf(http.StatusForbidden, "origin_not_allowed", "origin %s may not open the %s; add it to --allowed-origins", r.Header.Get("Origin"), what))
		return nil, p, false
	}
	up := websocket.Upgrader{
		ReadBufferSize: 4096, WriteBufferSize: 16384,
		CheckOrigin: func(*http.Request) bool { return true }, // checked above, with a clear answer
	}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return nil, p, false // the upgrader has answered
	}
	conn.SetReadLimit(readLimit)
	if !headed {
		if p, err = s.wsAuth(r.Context(), conn); err != nil {
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeAuth, err.Error()), time.Now().Add(time.Second))
			conn.Close()
			return nil, p, false
		}
	}
	return conn, p, true
}

type wsAuthMessage struct {
	Type  string `json:"type"`
	Token string `json:"token"`
}

func (s *Server) wsAuth(ctx context.Context, conn *websocket.Conn) (auth.Principal, error) {
	_ = conn.SetReadDeadline(time.Now().Add(authTimeout))
	var m wsAuthMessage
	if err := conn.ReadJSON(&m); err != nil || m.Type != "auth" {
		return auth.Principal{}, errors.New(`send {"type":"auth","token":"..."} first`)
	}
	p, err := s.auth.Resolve(ctx, m.Token)
	if err != nil {
		return auth.Principal{}, err
	}
	return p, nil
}

func (s *Server) serveClient(ctx context.Context, c *client, after uint64) {
	defer c.conn.Close()
	var (
		replayFrom, seq uint64
		ok              bool
	)
	s.svc.View(func(st *dispatch.State) {
		seq = st.Seq
		c.from = seq
		if after > 0 && after <= seq && seq-after <= maxReplay {
			replayFrom, c.paused = after, true
		} else {
			snap := snapshot(c.p, st)
			c.send <- message{data: snap, at: time.Now()}
			c.queued.Add(int64(len(snap)))
		}
		ok = s.hub.add(c)
	})
	if !ok {
		_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server restarting"), time.Now().Add(time.Second))
		return
	}
	defer s.hub.remove(c)
	if c.paused {
		if err := s.replay(ctx, c, replayFrom, seq); err != nil {
			s.log.Info("WebSocket replay ended", "err", err, "principal", c.p.ID())
			return
		}
		s.hub.resume(c)
	}
	s.hub.writers.Add(1)
	go c.reader()
	c.writer()
}

// replay writes the events after `after` up to seq straight to the socket;
// live events meanwhile wait in the client's backlog.
func (s *Server) replay(ctx context.Context, c *client, after, seq uint64) error {
	n := 0
	err := s.svc.Journal().Read(ctx, after, func(r journalRecord) error {
		if r.Seq > seq {
			return errStopReplay
		}
		var vis bool
		s.svc.View(func(st *dispatch.State) { vis = visible(c.p, r, st) })
		if !vis {
			return nil
		}
		n++
		_ = c.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		return c.conn.WriteMessage(websocket.TextMessage, r.Body)
	})
	if err != nil && !errors.Is(err, errStopReplay) {
		return err
	}
	done, _ := json.Marshal(map[string]any{"type": "replayed", "seq": seq, "events": n})
	_ = c.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	return c.conn.WriteMessage(websocket.TextMessage, done)
}

var errStopReplay = errors.New("replay complete")

func (c *client) writer() {
	h := c.hub
	defer h.writers.Done()
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	timeout := h.s.cfg.WriteTimeout
	write := func(m message) bool {
		_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
		if err := c.conn.WriteMessage(websocket.TextMessage, m.data); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				c.cutOff(closeSlow, "write_timeout", "not reading")
			} else {
				c.cutOff(websocket.CloseAbnormalClosure, "", "")
			}
			return false
		}
		c.queued.Add(-int64(len(m.data)))
		h.s.metrics.wsSent.Inc()
		h.s.metrics.wsFanout.Observe(time.Since(m.at).Seconds())
		return true
	}
	for {
		select {
		case m := <-c.send:
			if !write(m) {
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(timeout)); err != nil {
				c.cutOff(websocket.CloseAbnormalClosure, "", "")
				return
			}
		case <-c.done:
			if c.closeCode == websocket.CloseGoingAway {
				// Draining: deliver what is already queued first.
				for drained := false; !drained; {
					select {
					case m := <-c.send:
						if !write(m) {
							return
						}
					default:
						drained = true
					}
				}
			}
			if c.closeCode != websocket.CloseAbnormalClosure {
				_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.closeCode, c.closeText), time.Now().Add(time.Second))
			}
			return
		}
	}
}

// reader handles pongs and client messages; it ends the client when the
// connection goes away.
func (c *client) reader() {
	_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	})
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			c.cutOff(websocket.CloseAbnormalClosure, "", "")
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	}
}

type snapshotMessage struct {
	Type      string               `json:"type"`
	Seq       uint64               `json:"seq"`
	Principal auth.Principal       `json:"principal"`
	Incidents []*dispatch.Incident `json:"incidents"`
	Units     []*dispatch.Unit     `json:"units"`
	Calls     []*dispatch.Call     `json:"calls"`
	Alerts    []*dispatch.Alert    `json:"alerts"`
}

// snapshot encodes what p may see of the current state.
func snapshot(p auth.Principal, st *dispatch.State) []byte {
	m := snapshotMessage{Type: "snapshot", Seq: st.Seq, Principal: p,
		Incidents: []*dispatch.Incident{}, Units: []*dispatch.Unit{}, Calls: []*dispatch.Call{}, Alerts: []*dispatch.Alert{}}
	staff := p.Role == auth.RoleCallTaker || p.Role == auth.RoleDispatcher || p.Role == auth.RoleSupervisor || p.Role == auth.RoleViewer
	for _, in := range st.Incidents {
		if in.Status == dispatch.IncidentClosed {
			continue
		}
		if staff || ((p.Role == auth.RoleOfficer || p.Role == auth.RoleDevice) && in.ActiveAssignment(p.UnitID) != nil) {
			m.Incidents = append(m.Incidents, in)
		}
	}
	for _, u := range st.Units {
		if staff || p.Role == auth.RoleAdmin || u.ID == p.UnitID {
			m.Units = append(m.Units, u)
		}
	}
	if staff {
		for _, c := range st.Calls {
			if c.EndedAt == nil {
				m.Calls = append(m.Calls, c)
			}
		}
	}
	for _, a := range st.Alerts {
		if a.Active && (staff || (a.UnitID != "" && a.UnitID == p.UnitID)) {
			m.Alerts = append(m.Alerts, a)
		}
	}
	b, _ := json.Marshal(m)
	return b
}
