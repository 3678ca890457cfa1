package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kuzet/kuzet/gis"
	"github.com/kuzet/kuzet/internal/auth"
)

// The positions socket (GET /api/v1/positions/stream), the map's live feed:
//
//  1. Authenticate as on /api/v1/stream: Authorization: Bearer on the
//     upgrade, or {"type":"auth","token":"..."} as the first message.
//  2. Send {"type":"subscribe","bbox":[minLon,minLat,maxLon,maxLat],
//     "agency":"police","statuses":["available"]} (agency and statuses
//     optional). The answer is {"type":"snapshot","units":[...]} with the
//     units now in the box, then {"type":"positions","units":[...]} batches
//     of the units that moved, at most every 250 ms (gis.Feed: one encoding
//     per distinct viewport and filter, shared by its subscribers). Send
//     subscribe again when the map moves; the new snapshot follows.
//  3. Officer and device terminals may send their own unit's fixes:
//     {"type":"position","lat":..,"lon":..,"time":..,"accuracy":..,"id":"n"};
//     with an "id" the server answers {"type":"ack","id":"n","applied":b}.
//     Errors come back as {"type":"error","code","message","id"}.
//
// Who sees what: staff (call-takers, dispatchers, supervisors, viewers) see
// every unit. Officers and devices see only their own unit (need to know: a
// terminal's map shows its own position and its incident, not where every
// crew is); their snapshot holds only their unit and no batches follow.
// Admins see nothing here.
//
// A client whose feed queue fills up (it stopped reading for about 4 s) is
// closed with code 4008 and resubscribes after reconnecting.

const (
	maxPositionMessage = 16 << 10
	posControlSlots    = 64
)

// posClient is one positions socket. The writer goroutine owns conn writes
// and the feed subscription; the reader turns messages into requests for it.
type posClient struct {
	s    *Server
	conn *websocket.Conn
	p    auth.Principal
	out  chan []byte // control answers (snapshot, ack, error), bounded
	subs chan gis.FeedFilter
	done chan struct{}
	once sync.Once
	code int
	text string
}

func (c *posClient) close(code int, text string) {
	c.once.Do(func() {
		c.code, c.text = code, text
		close(c.done)
	})
}

// queue hands a control message to the writer; a client that lets 64 of
// them pile up is cut off.
func (c *posClient) queue(b []byte) {
	select {
	case c.out <- b:
	default:
		c.close(closeSlow, "too many unanswered messages")
	}
}

type posSockets struct {
	mu      sync.Mutex
	clients map[*posClient]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// drainGIS closes every positions socket with "going away" and waits for
// their writers until ctx ends.
func (s *Server) drainGIS(ctx context.Context) {
	if s.gis == nil {
		return
	}
	ps := &s.gis.sockets
	ps.mu.Lock()
	ps.closed = true
	for c := range ps.clients {
		c.close(websocket.CloseGoingAway, "server restarting; reconnect")
	}
	ps.mu.Unlock()
	done := make(chan struct{})
	go func() { ps.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (s *Server) positionStream(w http.ResponseWriter, r *http.Request) {
	if !s.gisReady(w, r) {
		return
	}
	conn, p, ok := s.upgradeAuthenticated(w, r, "positions stream", maxPositionMessage)
	if !ok {
		return
	}
	defer conn.Close()
	c := &posClient{s: s, conn: conn, p: p, out: make(chan []byte, posControlSlots), subs: make(chan gis.FeedFilter, 1), done: make(chan struct{})}
	ps := &s.gis.sockets
	ps.mu.Lock()
	if ps.closed {
		ps.mu.Unlock()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server restarting"), time.Now().Add(time.Second))
		return
	}
	if ps.clients == nil {
		ps.clients = map[*posClient]struct{}{}
	}
	ps.clients[c] = struct{}{}
	ps.wg.Add(1)
	ps.mu.Unlock()
	s.gis.socketsG.Inc()
	defer func() {
		s.gis.socketsG.Dec()
		ps.mu.Lock()
		delete(ps.clients, c)
		ps.mu.Unlock()
		ps.wg.Done()
	}()
	go c.reader(r.Context())
	c.writer()
}

type posMessage struct {
	Type     string    `json:"type"`
	ID       string    `json:"id,omitempty"`
	BBox     []float64 `json:"bbox,omitempty"`
	Agency   string    `json:"agency,omitempty"`
	Statuses []string  `json:"statuses,omitempty"`
	positionRequest
}

type posReply struct {
	Type    string `json:"type"`
	ID      string `json:"id,omitempty"`
	Applied *bool  `json:"applied,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

func (c *posClient) reply(m posReply) {
	b, _ := json.Marshal(m)
	c.queue(b)
}

func (c *posClient) fail(id, code, format string, args ...any) {
	c.reply(posReply{Type: "error", ID: id, Code: code, Message: fmt.Sprintf(format, args...)})
}

func (c *posClient) reader(ctx context.Context) {
	_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(readTimeout)) })
	field := c.p.Role == auth.RoleOfficer || c.p.Role == auth.RoleDevice
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.close(websocket.CloseNormalClosure, "")
			} else {
				c.close(websocket.CloseAbnormalClosure, "")
			}
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
		var m posMessage
		if err := json.Unmarshal(data, &m); err != nil {
			c.fail("", "malformed_json", "the message is not JSON: %v", err)
			continue
		}
		switch m.Type {
		case "subscribe":
			if len(m.BBox) != 4 {
				c.fail(m.ID, "bad_bbox", "bbox must be [minLon, minLat, maxLon, maxLat]")
				continue
			}
			f := gis.FeedFilter{BBox: gis.BBox{MinLon: m.BBox[0], MinLat: m.BBox[1], MaxLon: m.BBox[2], MaxLat: m.BBox[3]}, Agency: m.Agency, Statuses: m.Statuses}
			if err := f.BBox.Valid(); err != nil {
				c.fail(m.ID, "bad_bbox", "%v", err)
				continue
			}
			if len(f.Statuses) > 20 {
				c.fail(m.ID, "bad_statuses", "at most 20 statuses")
				continue
			}
			// Only the latest viewport matters: replace a pending one.
			select {
			case <-c.subs:
			default:
			}
			c.subs <- f
		case "position":
			if !field {
				c.fail(m.ID, "role_forbidden", "only officer and device terminals send positions, for their own unit")
				continue
			}
			if m.UnitID != "" && m.UnitID != c.p.UnitID {
				c.fail(m.ID, "not_your_unit", "a terminal of unit %q may report only its own position, not unit %q's", c.p.UnitID, m.UnitID)
				continue
			}
			fix, err := m.positionRequest.fix(c.p.ID())
			if err != nil {
				c.fail(m.ID, "bad_fix", "lat and lon are required")
				continue
			}
			uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			applied, err := c.s.gis.tr.Update(uctx, c.p.UnitID, fix)
			cancel()
			if err != nil {
				var he *httpError
				if errors.As(fixError(err), &he) {
					c.fail(m.ID, he.code, "%s", he.msg)
				} else {
					c.fail(m.ID, "internal", "position not stored; retry")
				}
				continue
			}
			c.s.gis.stored("socket", b2i(applied), 1-b2i(applied))
			if m.ID != "" {
				c.reply(posReply{Type: "ack", ID: m.ID, Applied: &applied})
			}
		default:
			c.fail(m.ID, "unknown_type", "type must be subscribe or position, not %q", m.Type)
		}
	}
}

type posSnapshot struct {
	Type  string          `json:"type"`
	Units []gis.UnitState `json:"units"`
}

func (c *posClient) snapshot(f gis.FeedFilter) []byte {
	snap := posSnapshot{Type: "snapshot", Units: []gis.UnitState{}}
	own := ""
	switch c.p.Role {
	case auth.RoleCallTaker, auth.RoleDispatcher, auth.RoleSupervisor, auth.RoleViewer:
	case auth.RoleOfficer, auth.RoleDevice:
		own = c.p.UnitID
		if own == "" {
			own = "\x00none"
		}
	default:
		own = "\x00none"
	}
	c.s.gis.tr.Index().InBox(f.BBox, func(u gis.UnitState) bool {
		if (own == "" || u.ID == own) && (f.Agency == "" || f.Agency == u.Agency) && (len(f.Statuses) == 0 || contains(f.Statuses, u.Status)) {
			snap.Units = append(snap.Units, u)
		}
		return true
	})
	b, _ := json.Marshal(snap)
	return b
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (c *posClient) writer() {
	timeout := c.s.cfg.WriteTimeout
	staff := c.p.Role == auth.RoleCallTaker || c.p.Role == auth.RoleDispatcher || c.p.Role == auth.RoleSupervisor || c.p.Role == auth.RoleViewer
	var sub *gis.Subscription
	defer func() {
		if sub != nil {
			sub.Unsubscribe()
		}
	}()
	var (
		batches <-chan []byte
		dropped <-chan struct{}
	)
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	write := func(b []byte) bool {
		_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
		if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				c.s.metrics.wsCutOff.WithLabelValues("write_timeout").Inc()
				c.close(closeSlow, "not reading")
			} else {
				c.close(websocket.CloseAbnormalClosure, "")
			}
			return false
		}
		return true
	}
	for {
		select {
		case f := <-c.subs:
			if sub != nil {
				sub.Unsubscribe()
				sub, batches, dropped = nil, nil, nil
			}
			if staff {
				var err error
				if sub, err = c.s.gis.feed.Subscribe(f); err != nil {
					c.fail("", "bad_bbox", "%v", err)
					continue
				}
				batches, dropped = sub.C, sub.Done()
			}
			// Subscribed before the snapshot: a move in between arrives
			// in the first batch rather than being lost.
			if !write(c.snapshot(f)) {
				return
			}
		case b := <-batches:
			if !write(b) {
				return
			}
		case <-dropped:
			if errors.Is(sub.Err(), gis.ErrSlowSubscriber) {
				c.s.metrics.wsCutOff.WithLabelValues("queue_full").Inc()
				c.close(closeSlow, "too far behind; reconnect and subscribe again")
			}
			sub, batches, dropped = nil, nil, nil
		case b := <-c.out:
			if !write(b) {
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(timeout)); err != nil {
				c.close(websocket.CloseAbnormalClosure, "")
				return
			}
		case <-c.done:
			if c.code != websocket.CloseAbnormalClosure {
				_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.code, c.text), time.Now().Add(time.Second))
			}
			return
		}
	}
}
