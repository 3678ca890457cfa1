package intake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxCTIEventBytes bounds one PBX event body. Real events are ~300 bytes.
const MaxCTIEventBytes = 4 << 10

// CTI event types sent by the PBX adapter to POST /ingest/cti.
const (
	CTIOffered     = "offered"
	CTIAnswered    = "answered"
	CTITransferred = "transferred"
	CTIEnded       = "ended"
)

// CTIEvent is one PBX event. One flat object for all types keeps the wire
// format trivial for PBX scripts; Validate rejects fields that do not belong
// to the event's type.
//
//	{"type":"offered","call_id":"1732555440.17","time":"2026-11-25T17:24:00Z",
//	 "caller_number":"+77011234567","caller_name":"ASKAROV A","line":"102-1","trunk":"kcell-sip"}
//	{"type":"answered","call_id":"1732555440.17","time":"...","operator":"op.ainur","extension":"2101"}
//	{"type":"transferred","call_id":"1732555440.17","time":"...","to":"1402"}
//	{"type":"ended","call_id":"1732555440.17","time":"...","cause":"normal"}
type CTIEvent struct {
	Type   string    `json:"type"`
	CallID string    `json:"call_id"`
	Time   time.Time `json:"time"`

	// offered
	CallerNumber string `json:"caller_number,omitempty"` // empty: withheld
	CallerName   string `json:"caller_name,omitempty"`
	Line         string `json:"line,omitempty"`
	Trunk        string `json:"trunk,omitempty"`

	// answered
	Operator  string `json:"operator,omitempty"`
	Extension string `json:"extension,omitempty"`

	// transferred: target extension or queue
	To string `json:"to,omitempty"`

	// ended
	Cause string `json:"cause,omitempty"`
}

// CTI end causes. The adapter maps PBX-specific causes (Asterisk hangup
// cause codes, Q.850) onto these.
var ctiCauses = map[string]bool{
	"normal": true, "abandoned": true, "busy": true, "no_answer": true,
	"transferred_out": true, "failed": true, "lost": true,
}

// DecodeCTIEvent reads one event strictly: at most MaxCTIEventBytes, unknown
// fields rejected, one JSON value only, then Validate.
func DecodeCTIEvent(r io.Reader) (CTIEvent, error) {
	var ev CTIEvent
	body, err := io.ReadAll(io.LimitReader(r, MaxCTIEventBytes+1))
	if err != nil {
		return ev, fmt.Errorf("%w: reading CTI event: %v", ErrMalformed, err)
	}
	if len(body) > MaxCTIEventBytes {
		return ev, fmt.Errorf("%w: CTI event over %d bytes", ErrTooLarge, MaxCTIEventBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return ev, fmt.Errorf("%w: CTI event JSON: %v", ErrMalformed, err)
	}
	if dec.More() {
		return ev, fmt.Errorf("%w: CTI event: send one JSON object per request", ErrMalformed)
	}
	if err := ev.Validate(); err != nil {
		return ev, err
	}
	return ev, nil
}

// Validate checks field presence and ranges per event type and normalises
// the caller number to E.164.
func (ev *CTIEvent) Validate() error {
	if err := checkToken("call_id", ev.CallID, 128, true); err != nil {
		return err
	}
	if ev.Time.IsZero() {
		return fmt.Errorf("%w: CTI event %s: time is required (RFC 3339)", ErrInvalid, ev.CallID)
	}
	offeredOnly := ev.CallerNumber != "" || ev.CallerName != "" || ev.Line != "" || ev.Trunk != ""
	answeredOnly := ev.Operator != "" || ev.Extension != ""
	switch ev.Type {
	case CTIOffered:
		if answeredOnly || ev.To != "" || ev.Cause != "" {
			return fmt.Errorf("%w: offered event carries answered/transferred/ended fields", ErrInvalid)
		}
		switch strings.ToLower(ev.CallerNumber) {
		case "anonymous", "unknown", "restricted", "private", "withheld":
			// Withheld CLI is common on emergency calls; PBXs spell it in
			// several ways. The call is still a call, just unmatched to AML.
			ev.CallerNumber = ""
		}
		if ev.CallerNumber != "" {
			n, err := NormalizePhone(ev.CallerNumber)
			if err != nil {
				return fmt.Errorf("caller_number: %w", err)
			}
			ev.CallerNumber = n
		}
		if !utf8.ValidString(ev.CallerName) || utf8.RuneCountInString(ev.CallerName) > 128 {
			return fmt.Errorf("%w: caller_name must be UTF-8, at most 128 characters", ErrInvalid)
		}
		if err := checkToken("line", ev.Line, 64, false); err != nil {
			return err
		}
		return checkToken("trunk", ev.Trunk, 64, false)
	case CTIAnswered:
		if offeredOnly || ev.To != "" || ev.Cause != "" {
			return fmt.Errorf("%w: answered event carries offered/transferred/ended fields", ErrInvalid)
		}
		if ev.Operator == "" && ev.Extension == "" {
			return fmt.Errorf("%w: answered event needs operator or extension", ErrInvalid)
		}
		if err := checkToken("operator", ev.Operator, 64, false); err != nil {
			return err
		}
		return checkToken("extension", ev.Extension, 32, false)
	case CTITransferred:
		if offeredOnly || answeredOnly || ev.Cause != "" {
			return fmt.Errorf("%w: transferred event carries other event fields", ErrInvalid)
		}
		return checkToken("to", ev.To, 64, true)
	case CTIEnded:
		if offeredOnly || answeredOnly || ev.To != "" {
			return fmt.Errorf("%w: ended event carries other event fields", ErrInvalid)
		}
		if !ctiCauses[ev.Cause] {
			return fmt.Errorf("%w: ended cause %q; use normal, abandoned, busy, no_answer, transferred_out, failed or lost", ErrInvalid, ev.Cause)
		}
		return nil
	default:
		return fmt.Errorf("%w: CTI event type %q; use offered, answered, transferred or ended", ErrInvalid, ev.Type)
	}
}

// checkToken accepts identifiers made of printable ASCII without spaces
// or quotes: PBX ids, extensions, usernames, queue names.
func checkToken(field, v string, max int, required bool) error {
	if v == "" {
		if required {
			return fmt.Errorf("%w: %s is required", ErrInvalid, field)
		}
		return nil
	}
	if len(v) > max {
		return fmt.Errorf("%w: %s longer than %d characters", ErrInvalid, field, max)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return fmt.Errorf("%w: %s %q: use printable ASCII without spaces", ErrInvalid, field, v)
		}
	}
	return nil
}

// PBXCallState is the state of a PBX call as the CTI events describe it.
type PBXCallState string

const (
	PBXRinging     PBXCallState = "ringing"
	PBXActive      PBXCallState = "active"
	PBXTransferred PBXCallState = "transferred" // ringing at the transfer target
	PBXEnded       PBXCallState = "ended"
)

// PBXCall is a snapshot of one PBX call.
type PBXCall struct {
	ID            string
	CallerNumber  string
	CallerName    string
	Line, Trunk   string
	State         PBXCallState
	OfferedAt     time.Time
	AnsweredAt    time.Time // first answer; zero if never answered
	EndedAt       time.Time
	Operator      string
	Extension     string
	TransferredTo string
	Cause         string

	evicted bool // left the statistics ring while still live
}

// AnswerDelay is the NENA answer time: offered → first answered.
func (c PBXCall) AnswerDelay() (time.Duration, bool) {
	if c.AnsweredAt.IsZero() {
		return 0, false
	}
	return c.AnsweredAt.Sub(c.OfferedAt), true
}

// CallTrackerConfig bounds the tracker.
type CallTrackerConfig struct {
	// MaxLive bounds calls not yet ended. Default 10,000.
	MaxLive int
	// History is how many calls (live and ended) are kept for answer
	// statistics and for recognising late events of ended calls.
	// Default 100,000 (about seven weeks at Astana's volume).
	History int
}

// CallTracker is the per-PBX-call state machine. One mutex guards all
// state; every method is short and does no I/O.
type CallTracker struct {
	cfg  CallTrackerConfig
	mu   sync.Mutex
	live map[string]*PBXCall
	// ring holds calls in offered order for statistics; byID finds ended
	// ones still in the ring.
	ring []*PBXCall
	next int
	byID map[string]*PBXCall
}

// NewCallTracker validates cfg and returns an empty tracker.
func NewCallTracker(cfg CallTrackerConfig) (*CallTracker, error) {
	if cfg.MaxLive == 0 {
		cfg.MaxLive = 10000
	}
	if cfg.History == 0 {
		cfg.History = 100000
	}
	if cfg.MaxLive < 0 || cfg.History < cfg.MaxLive {
		return nil, fmt.Errorf("%w: CallTracker needs MaxLive > 0 and History >= MaxLive", ErrConfig)
	}
	return &CallTracker{cfg: cfg, live: map[string]*PBXCall{}, byID: map[string]*PBXCall{}}, nil
}

// Apply moves the call named by ev through its state machine and returns
// the call after the event. Impossible transitions return ErrUnknownCall,
// ErrBadTransition or ErrDuplicateCall and change nothing. ev must have
// passed Validate (DecodeCTIEvent does that).
func (t *CallTracker) Apply(ev CTIEvent) (PBXCall, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ev.Type == CTIOffered {
		if _, ok := t.byID[ev.CallID]; ok {
			return PBXCall{}, fmt.Errorf("%w: %s", ErrDuplicateCall, ev.CallID)
		}
		if len(t.live) >= t.cfg.MaxLive {
			return PBXCall{}, fmt.Errorf("%w: %d live PBX calls; are ended events being sent?", ErrFull, len(t.live))
		}
		c := &PBXCall{ID: ev.CallID, CallerNumber: ev.CallerNumber, CallerName: ev.CallerName,
			Line: ev.Line, Trunk: ev.Trunk, State: PBXRinging, OfferedAt: ev.Time}
		t.insert(c)
		return *c, nil
	}
	c, ok := t.byID[ev.CallID]
	if !ok {
		return PBXCall{}, fmt.Errorf("%w: %s %s before offered", ErrUnknownCall, ev.CallID, ev.Type)
	}
	if c.State == PBXEnded {
		return *c, fmt.Errorf("%w: %s %s after ended", ErrBadTransition, ev.CallID, ev.Type)
	}
	if ev.Time.Before(c.OfferedAt) {
		return *c, fmt.Errorf("%w: %s %s at %s is before offered at %s", ErrInvalid, ev.CallID, ev.Type,
			ev.Time.Format(time.RFC3339Nano), c.OfferedAt.Format(time.RFC3339Nano))
	}
	switch ev.Type {
	case CTIAnswered:
		if c.State == PBXActive {
			return *c, fmt.Errorf("%w: %s answered twice", ErrBadTransition, ev.CallID)
		}
		c.State = PBXActive
		if c.AnsweredAt.IsZero() {
			c.AnsweredAt = ev.Time
		}
		c.Operator, c.Extension = ev.Operator, ev.Extension
	case CTITransferred:
		c.State = PBXTransferred
		c.TransferredTo = ev.To
	case CTIEnded:
		c.State = PBXEnded
		c.EndedAt = ev.Time
		c.Cause = ev.Cause
		delete(t.live, c.ID)
		if c.evicted {
			delete(t.byID, c.ID)
		}
	}
	return *c, nil
}

func (t *CallTracker) insert(c *PBXCall) {
	if len(t.ring) < t.cfg.History {
		t.ring = append(t.ring, c)
	} else {
		old := t.ring[t.next]
		// A call that is still live stays reachable through live and byID
		// until it ends; it only drops out of the statistics.
		if t.live[old.ID] != old {
			delete(t.byID, old.ID)
		} else {
			old.evicted = true
		}
		t.ring[t.next] = c
		t.next = (t.next + 1) % t.cfg.History
	}
	t.live[c.ID] = c
	t.byID[c.ID] = c
}

// Live returns the calls not yet ended (ringing, active, transferred).
func (t *CallTracker) Live() []PBXCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]PBXCall, 0, len(t.live))
	for _, c := range t.live {
		out = append(out, *c)
	}
	return out
}

// Get returns the call with the PBX id, live or recently ended.
func (t *CallTracker) Get(id string) (PBXCall, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.byID[id]
	if !ok {
		return PBXCall{}, false
	}
	return *c, true
}

// ActiveByNumber returns the most recently offered live call from the
// E.164 number; the AML matcher uses it.
func (t *CallTracker) ActiveByNumber(e164 string) (PBXCall, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var best *PBXCall
	for _, c := range t.live {
		if c.CallerNumber == e164 && (best == nil || c.OfferedAt.After(best.OfferedAt)) {
			best = c
		}
	}
	if best == nil {
		return PBXCall{}, false
	}
	return *best, true
}

// AnswerStats is the NENA call answering figure over a period.
// NENA-STA-020.1-2020 §2.2: 90 % of calls answered within 15 s, 95 % within
// 20 s. The denominator is every call offered in the period, including
// abandoned ones, as the standard counts calls arriving at the PSAP.
type AnswerStats struct {
	Offered, Answered, Abandoned int
	Within15, Within20           int
	Share15, Share20             float64 // 0..1; 0 when Offered is 0
}

// Stats computes AnswerStats over calls offered in [from, to). Calls still
// ringing count as not answered within a threshold once that threshold has
// passed at now, and are left out of the denominator before that.
func (t *CallTracker) Stats(from, to, now time.Time) AnswerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	var s AnswerStats
	for _, c := range t.ring {
		if c.OfferedAt.Before(from) || !c.OfferedAt.Before(to) {
			continue
		}
		if c.AnsweredAt.IsZero() && c.State != PBXEnded && now.Sub(c.OfferedAt) <= 20*time.Second {
			continue // still inside the window: not yet decided
		}
		s.Offered++
		d, ok := c.AnswerDelay()
		if !ok {
			if c.State == PBXEnded {
				s.Abandoned++
			}
			continue
		}
		s.Answered++
		if d <= 15*time.Second {
			s.Within15++
		}
		if d <= 20*time.Second {
			s.Within20++
		}
	}
	if s.Offered > 0 {
		s.Share15 = float64(s.Within15) / float64(s.Offered)
		s.Share20 = float64(s.Within20) / float64(s.Offered)
	}
	return s
}
