package intake

import (
	"container/list"
	"fmt"
	"math"
	"sync"
	"time"
)

// LimiterConfig configures Limiter.
type LimiterConfig struct {
	// Rate is tokens added per second per client; Burst the bucket size.
	// Defaults: 1 report per 10 s, burst 5.
	Rate  float64
	Burst int
	// MaxClients bounds memory; the least recently seen client is evicted
	// when full. Default 100,000 (about 10 MB).
	MaxClients int
	Now        func() time.Time
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time
}

// Limiter is a per-client token bucket. One mutex guards the map and the
// LRU list; Allow does O(1) work under it.
type Limiter struct {
	cfg     LimiterConfig
	mu      sync.Mutex
	clients map[string]*list.Element
	lru     *list.List // front = most recent
}

// NewLimiter validates cfg.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	if cfg.Rate == 0 {
		cfg.Rate = 0.1
	}
	if cfg.Burst == 0 {
		cfg.Burst = 5
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = 100000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) || cfg.Burst < 0 || cfg.MaxClients < 0 {
		return nil, fmt.Errorf("%w: Limiter Rate, Burst and MaxClients must be positive", ErrConfig)
	}
	return &Limiter{cfg: cfg, clients: map[string]*list.Element{}, lru: list.New()}, nil
}

// Allow takes one token for key. If none is left it returns false and how
// long until one is, for a 429 response's Retry-After (round up to whole
// seconds).
//
// Evicting the least recently seen client when full means a flood of new
// keys can reset an old client's bucket; that client then gets at most one
// extra burst, which is the cheaper failure than refusing new clients.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if e, ok := l.clients[key]; ok {
		l.lru.MoveToFront(e)
		b = e.Value.(*bucket)
		b.tokens = math.Min(float64(l.cfg.Burst), b.tokens+now.Sub(b.last).Seconds()*l.cfg.Rate)
		b.last = now
	} else {
		if l.lru.Len() >= l.cfg.MaxClients {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.clients, old.Value.(*bucket).key)
		}
		b = &bucket{key: key, tokens: float64(l.cfg.Burst), last: now}
		l.clients[key] = l.lru.PushFront(b)
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.cfg.Rate * float64(time.Second))
	return false, wait
}

// Clients returns how many clients are tracked.
func (l *Limiter) Clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// Check is Allow as an error: nil, or ErrRateLimited wrapped with the wait,
// plus RetryAfter seconds for the 429 response header (RFC 9110 §10.2.3:
// whole seconds, rounded up so the client does not come back too early).
func (l *Limiter) Check(key string) (retryAfter int, err error) {
	ok, wait := l.Allow(key)
	if ok {
		return 0, nil
	}
	secs := int((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return secs, fmt.Errorf("%w: try again in %d s", ErrRateLimited, secs)
}
