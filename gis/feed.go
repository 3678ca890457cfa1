package gis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/rtree"
)

// FeedConfig configures a Feed.
type FeedConfig struct {
	Interval time.Duration // coalescing period, default 250 ms
	QueueLen int           // batches buffered per subscriber, default 16 (4 s at 250 ms)
}

// FeedFilter is what a map client wants to see.
type FeedFilter struct {
	BBox     BBox
	Agency   string   // "" = all
	Statuses []string // empty = all
}

func (f FeedFilter) key() string {
	st := slices.Clone(f.Statuses)
	slices.Sort(st)
	b := f.BBox
	return fmt.Sprintf("%g,%g,%g,%g|%s|%s", b.MinLon, b.MinLat, b.MaxLon, b.MaxLat, f.Agency, strings.Join(st, ","))
}

func (f *FeedFilter) match(u *UnitState) bool {
	return f.BBox.Contains(u.Fix.Point()) &&
		(f.Agency == "" || f.Agency == u.Agency) &&
		(len(f.Statuses) == 0 || slices.Contains(f.Statuses, u.Status))
}

// Subscription is one map client. C carries encoded batches (JSON, shared
// between subscribers: do not modify); Done is closed when the Feed drops
// the subscriber because its queue was full (Err then returns
// ErrSlowSubscriber) or it unsubscribed.
type Subscription struct {
	C    <-chan []byte
	c    chan []byte
	done chan struct{}
	key  string
	err  error
	feed *Feed
}

// Done is closed when the subscription ends.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err says why the subscription ended (nil while active or after
// Unsubscribe; ErrSlowSubscriber when dropped).
func (s *Subscription) Err() error {
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	return s.err
}

// Unsubscribe removes the subscription.
func (s *Subscription) Unsubscribe() { s.feed.remove(s, nil) }

type group struct {
	filter FeedFilter
	subs   []*Subscription
}

// Feed is the map fan-out core. Publish records the latest state of each
// unit; every Interval, Flush takes what changed, encodes each unit once,
// then for each distinct filter (viewport + agency + statuses) joins the
// matching units into one JSON batch shared by every subscriber with that
// filter, and offers it to their queues without blocking. A subscriber
// whose queue is full is dropped (Done closed, Err ErrSlowSubscriber); the
// caller closes its socket and the client resyncs on reconnect.
//
// One mutex guards the pending updates and the subscriber groups; Flush
// holds it only to swap the pending map and to copy the groups.
type Feed struct {
	cfg     FeedConfig
	mu      sync.Mutex
	pending map[string]UnitState
	groups  map[string]*group
}

// NewFeed validates cfg.
func NewFeed(cfg FeedConfig) (*Feed, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = 16
	}
	if cfg.Interval < time.Millisecond || cfg.QueueLen < 1 {
		return nil, fmt.Errorf("%w: feed interval ≥ 1 ms and queue ≥ 1 required", ErrBadConfig)
	}
	return &Feed{cfg: cfg, pending: make(map[string]UnitState), groups: make(map[string]*group)}, nil
}

// Publish records a unit's latest state (Tracker's OnUpdate, and status
// changes). Cheap: one map write.
func (f *Feed) Publish(u UnitState) {
	if !u.HasFix {
		return
	}
	f.mu.Lock()
	f.pending[u.ID] = u
	f.mu.Unlock()
}

// Subscribe adds a map client.
func (f *Feed) Subscribe(filter FeedFilter) (*Subscription, error) {
	if err := filter.BBox.Valid(); err != nil {
		return nil, err
	}
	c := make(chan []byte, f.cfg.QueueLen)
	s := &Subscription{C: c, c: c, done: make(chan struct{}), key: filter.key(), feed: f}
	f.mu.Lock()
	g := f.groups[s.key]
	if g == nil {
		g = &group{filter: filter}
		f.groups[s.key] = g
	}
	g.subs = append(g.subs, s)
	f.mu.Unlock()
	return s, nil
}

func (f *Feed) remove(s *Subscription, reason error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.groups[s.key]
	if g == nil {
		return
	}
	i := slices.Index(g.subs, s)
	if i < 0 {
		return
	}
	g.subs = slices.Delete(g.subs, i, i+1)
	if len(g.subs) == 0 {
		delete(f.groups, s.key)
	}
	s.err = reason
	close(s.done)
}

// Subscribers is the number of active subscriptions.
func (f *Feed) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, g := range f.groups {
		n += len(g.subs)
	}
	return n
}

// Run flushes every Interval until ctx ends.
func (f *Feed) Run(ctx context.Context) error {
	tk := time.NewTicker(f.cfg.Interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
			f.Flush()
		}
	}
}

// feedItem is the wire form of one unit in a batch.
type feedItem struct {
	ID      string  `json:"id"`
	Lat     float64 `json:"lat"`
	Lon     float64 `json:"lon"`
	T       int64   `json:"t"` // unix ms
	Speed   float64 `json:"spd"`
	Heading float64 `json:"hdg"`
	Agency  string  `json:"agency"`
	Kind    string  `json:"kind"`
	Status  string  `json:"status"`
	Stale   bool    `json:"stale,omitempty"`
}

// FlushStats describes one Flush.
type FlushStats struct {
	Units     int // changed units
	Encodings int // distinct filters that received a batch
	Delivered int // batches queued to subscribers
	Dropped   int // subscribers dropped as too slow
}

// Flush encodes and delivers what changed since the last Flush. Batches are
// {"type":"positions","units":[...]}; filters with no matching change get
// nothing.
func (f *Feed) Flush() FlushStats {
	f.mu.Lock()
	pending := f.pending
	if len(pending) == 0 {
		f.mu.Unlock()
		return FlushStats{}
	}
	f.pending = make(map[string]UnitState, len(pending))
	groups := make([]*group, 0, len(f.groups))
	for _, g := range f.groups {
		groups = append(groups, &group{filter: g.filter, subs: slices.Clone(g.subs)})
	}
	f.mu.Unlock()

	st := FlushStats{Units: len(pending)}
	units := make([]UnitState, 0, len(pending))
	enc := make([][]byte, 0, len(pending))
	for _, u := range pending {
		b, err := json.Marshal(feedItem{ID: u.ID, Lat: u.Fix.Lat, Lon: u.Fix.Lon, T: u.Fix.Time.UnixMilli(),
			Speed: u.Fix.Speed, Heading: u.Fix.Heading, Agency: u.Agency, Kind: u.Kind, Status: u.Status, Stale: u.Fix.Stale})
		if err != nil {
			continue // cannot happen: all fields are finite
		}
		units = append(units, u)
		enc = append(enc, b)
	}
	// Index the distinct viewports for this flush, then route each unit to
	// the groups whose viewport holds it: 2,500 R-tree point searches
	// instead of 2,500 × (number of viewports) box tests.
	var vt rtree.RTreeG[int]
	for i, g := range groups {
		b := g.filter.BBox
		vt.Insert([2]float64{b.MinLon, b.MinLat}, [2]float64{b.MaxLon, b.MaxLat}, i)
	}
	members := make([][]int32, len(groups))
	size := make([]int, len(groups))
	for i := range units {
		u := &units[i]
		p := [2]float64{u.Fix.Lon, u.Fix.Lat}
		vt.Search(p, p, func(_, _ [2]float64, gi int) bool {
			if groups[gi].filter.match(u) {
				members[gi] = append(members[gi], int32(i))
				size[gi] += len(enc[i]) + 1
			}
			return true
		})
	}
	// One exact-size buffer per group: no regrowth while joining.
	bufs := make([][]byte, len(groups))
	for gi, m := range members {
		if len(m) == 0 {
			continue
		}
		const head, tail = `{"type":"positions","units":[`, "]}"
		b := make([]byte, 0, len(head)+size[gi]+len(tail))
		b = append(b, head...)
		for k, i := range m {
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, enc[i]...)
		}
		bufs[gi] = append(b, tail...)
	}
	var slow []*Subscription
	for gi, g := range groups {
		if bufs[gi] == nil {
			continue
		}
		batch := bufs[gi] // shared by all subscribers of g
		st.Encodings++
		for _, s := range g.subs {
			select {
			case s.c <- batch:
				st.Delivered++
			default:
				slow = append(slow, s)
			}
		}
	}
	for _, s := range slow {
		f.remove(s, fmt.Errorf("%w: %d batches queued", ErrSlowSubscriber, f.cfg.QueueLen))
		st.Dropped++
	}
	return st
}
