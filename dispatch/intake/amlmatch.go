package intake

import (
	"fmt"
	"sync"
	"time"
)

// CallFinder finds the live call from a caller number. CallTracker
// implements it; the dispatch core may supply its own view of calls.
type CallFinder interface {
	// CallByNumber returns the id of the newest live call from the E.164
	// number.
	CallByNumber(e164 string) (callID string, ok bool)
}

// CallByNumber implements CallFinder with PBX call ids.
func (t *CallTracker) CallByNumber(e164 string) (string, bool) {
	c, ok := t.ActiveByNumber(e164)
	return c.ID, ok
}

// AMLMatcherConfig configures AMLMatcher.
type AMLMatcherConfig struct {
	// Wait is how long a fix without a matching call is kept. AML is sent
	// as soon as the handset dials, so it often arrives before the PBX has
	// offered the call. Default 2 minutes.
	Wait time.Duration
	// MaxPending bounds the fixes held across all numbers; when full the
	// oldest is dropped. Default 1,000.
	MaxPending int
	// Now is the clock; tests set it. Default time.Now.
	Now func() time.Time
}

type pendingFix struct {
	fix AMLFix
	at  time.Time
	seq uint64 // tells this offer's fix apart from others of the number
}

// AMLMatcher pairs AML fixes with calls by normalised caller number. A fix
// for a number with a live call is returned at once; otherwise it waits
// until the call is offered (TakePending) or Wait passes. One mutex guards
// the pending map.
type AMLMatcher struct {
	cfg     AMLMatcherConfig
	mu      sync.Mutex
	pending map[string][]pendingFix
	n       int
	seq     uint64
}

// NewAMLMatcher validates cfg.
func NewAMLMatcher(cfg AMLMatcherConfig) (*AMLMatcher, error) {
	if cfg.Wait == 0 {
		cfg.Wait = 2 * time.Minute
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Wait < 0 || cfg.MaxPending < 0 {
		return nil, fmt.Errorf("%w: AMLMatcher Wait and MaxPending must be positive", ErrConfig)
	}
	return &AMLMatcher{cfg: cfg, pending: map[string][]pendingFix{}}, nil
}

// Offer is called for each authenticated fix. If calls has a live call from
// the fix's number it returns that call id and true: the caller attaches the
// fix to the call (as a location the operator may choose to use, never
// overwriting a typed one). Otherwise the fix is kept for Wait and false is
// returned. A fix without a device number cannot be matched and is
// rejected with ErrInvalid.
//
// The fix is stored before calls is asked, so a call that appears at the
// same moment is never missed: either calls already has it (and Offer takes
// the fix back), or the call is announced after the fix was stored and
// whoever announces it (TakePending, on any node that follows the journal)
// finds the fix. Either way exactly one of them gets it.
func (m *AMLMatcher) Offer(fix AMLFix, calls CallFinder) (string, bool, error) {
	if fix.DeviceNumber == "" {
		return "", false, fmt.Errorf("%w: AML fix has no device number to match a call", ErrInvalid)
	}
	m.mu.Lock()
	now := m.cfg.Now()
	m.expireLocked(now)
	if m.n >= m.cfg.MaxPending {
		m.dropOldestLocked()
	}
	m.seq++
	seq := m.seq
	m.pending[fix.DeviceNumber] = append(m.pending[fix.DeviceNumber], pendingFix{fix, now, seq})
	m.n++
	m.mu.Unlock()
	if id, ok := calls.CallByNumber(fix.DeviceNumber); ok && m.takeBack(fix.DeviceNumber, seq) {
		return id, true, nil
	}
	return "", false, nil
}

// Keep stores fixes again that TakePending returned but could not be used
// (the call they were taken for was refused); they wait a full Wait again.
func (m *AMLMatcher) Keep(fixes []AMLFix) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	for _, f := range fixes {
		if m.n >= m.cfg.MaxPending {
			m.dropOldestLocked()
		}
		m.seq++
		m.pending[f.DeviceNumber] = append(m.pending[f.DeviceNumber], pendingFix{f, now, m.seq})
		m.n++
	}
}

// takeBack removes the fix stored under seq; false if TakePending (or
// expiry) got it first.
func (m *AMLMatcher) takeBack(e164 string, seq uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pending[e164]
	for i := range p {
		if p[i].seq == seq {
			if len(p) == 1 {
				delete(m.pending, e164)
			} else {
				m.pending[e164] = append(p[:i:i], p[i+1:]...)
			}
			m.n--
			return true
		}
	}
	return false
}

// HasPending reports whether fixes wait for e164 (cheap: the journal
// listener asks it for every new call).
func (m *AMLMatcher) HasPending(e164 string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending[e164]) > 0
}

// TakePending is called when a call from e164 is offered; it returns the
// fixes waiting for that number, oldest first, and forgets them.
func (m *AMLMatcher) TakePending(e164 string) []AMLFix {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(m.cfg.Now())
	p := m.pending[e164]
	delete(m.pending, e164)
	m.n -= len(p)
	out := make([]AMLFix, len(p))
	for i := range p {
		out[i] = p[i].fix
	}
	return out
}

// Pending returns how many fixes are waiting.
func (m *AMLMatcher) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(m.cfg.Now())
	return m.n
}

func (m *AMLMatcher) expireLocked(now time.Time) {
	for k, p := range m.pending {
		i := 0
		for i < len(p) && now.Sub(p[i].at) > m.cfg.Wait {
			i++
		}
		if i == len(p) {
			delete(m.pending, k)
		} else if i > 0 {
			m.pending[k] = p[i:]
		}
		m.n -= i
	}
}

// dropOldestLocked is O(numbers) but runs only when the store is full, and
// the store is small.
func (m *AMLMatcher) dropOldestLocked() {
	var key string
	var at time.Time
	for k, p := range m.pending {
		if key == "" || p[0].at.Before(at) {
			key, at = k, p[0].at
		}
	}
	if key == "" {
		return
	}
	if p := m.pending[key]; len(p) == 1 {
		delete(m.pending, key)
	} else {
		m.pending[key] = p[1:]
	}
	m.n--
}
