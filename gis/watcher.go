package gis

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// EventKind names a watcher event.
type EventKind string

// Watcher event kinds.
const (
	EventLeftSector      EventKind = "unit_left_sector"  // unit is outside its assigned sector
	EventSectorUncovered EventKind = "sector_uncovered"  // no available unit inside the sector
	EventStale           EventKind = "unit_signal_stale" // no fix for StaleAfter
	EventInaccurate      EventKind = "fix_inaccurate"    // latest fix accuracy worse than MaxAccuracy
)

// Event is raised once when a condition starts (Cleared false) and once
// when it ends (Cleared true).
type Event struct {
	Kind     EventKind   `json:"kind"`
	Cleared  bool        `json:"cleared"`
	UnitID   string      `json:"unit_id,omitempty"`
	SectorID string      `json:"sector_id,omitempty"`
	At       time.Time   `json:"at"`
	Detail   string      `json:"detail,omitempty"`
	MoveUp   []Candidate `json:"move_up,omitempty"` // sector_uncovered: nearest available units outside it
}

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	Units   *Index       // positions, statuses and assigned sectors (UnitInfo.Sector)
	Sectors *SectorIndex // sector shapes
	// Emit receives every event, from the Run goroutine; the caller journals
	// them. It must not call back into the Watcher.
	Emit func(Event)
	// AvailableStatuses count for sector coverage; default ["available"].
	AvailableStatuses []string
	// WatchStatuses limits stale/inaccurate/left-sector checks to units in
	// these statuses (empty: all units, e.g. leave out "off_duty").
	WatchStatuses []string
	// CoverSectors are the sectors that must always hold an available unit
	// (empty: all loaded sectors).
	CoverSectors []string
	StaleAfter   time.Duration // default 60 s
	MaxAccuracy  float64       // metres, default 100
	MoveUpK      int           // units suggested for an uncovered sector, default 3
	Interval     time.Duration // Run's check period, default 1 s
	Now          func() time.Time
}

type alarmKey struct {
	kind EventKind
	id   string
}

// Watcher evaluates the current picture periodically and emits the
// difference from the previous evaluation, so each condition is raised once
// and cleared once. All state is owned by the goroutine calling Check (Run).
type Watcher struct {
	cfg    WatcherConfig
	active map[alarmKey]bool
}

// NewWatcher validates cfg.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if cfg.Units == nil || cfg.Sectors == nil || cfg.Emit == nil {
		return nil, fmt.Errorf("%w: watcher needs Units, Sectors and Emit", ErrBadConfig)
	}
	if len(cfg.AvailableStatuses) == 0 {
		cfg.AvailableStatuses = []string{"available"}
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = time.Minute
	}
	if cfg.MaxAccuracy <= 0 {
		cfg.MaxAccuracy = 100
	}
	if cfg.MoveUpK <= 0 {
		cfg.MoveUpK = 3
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Watcher{cfg: cfg, active: make(map[alarmKey]bool)}, nil
}

// Run calls Check every Interval until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	tk := time.NewTicker(w.cfg.Interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
			w.Check(w.cfg.Now())
		}
	}
}

// Check evaluates all conditions at now and emits raised and cleared
// events. Not safe for concurrent use (Run owns it).
func (w *Watcher) Check(now time.Time) {
	var units []UnitState
	w.cfg.Units.Units(func(u UnitState) bool { units = append(units, u); return true })
	slices.SortFunc(units, func(a, b UnitState) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	next := make(map[alarmKey]string)
	covered := make(map[string]bool)
	for _, u := range units {
		if !u.HasFix {
			continue
		}
		p := u.Fix.Point()
		if slices.Contains(w.cfg.AvailableStatuses, u.Status) && now.Sub(u.Fix.Time) <= w.cfg.StaleAfter {
			if s, ok := w.cfg.Sectors.Lookup(p); ok {
				covered[s.ID] = true
			}
			if u.Sector != "" && w.cfg.Sectors.Contains(u.Sector, p) {
				covered[u.Sector] = true
			}
		}
		if len(w.cfg.WatchStatuses) > 0 && !slices.Contains(w.cfg.WatchStatuses, u.Status) {
			continue
		}
		if age := now.Sub(u.Fix.Time); age > w.cfg.StaleAfter {
			next[alarmKey{EventStale, u.ID}] = fmt.Sprintf("last fix %s ago", age.Round(time.Second))
		}
		if u.Fix.Accuracy > w.cfg.MaxAccuracy {
			next[alarmKey{EventInaccurate, u.ID}] = fmt.Sprintf("accuracy %.0f m (limit %.0f m)", u.Fix.Accuracy, w.cfg.MaxAccuracy)
		}
		if u.Sector != "" {
			if _, known := w.cfg.Sectors.Get(u.Sector); known && !w.cfg.Sectors.Contains(u.Sector, p) {
				next[alarmKey{EventLeftSector, u.ID}] = "assigned sector " + u.Sector
			}
		}
	}
	sectors := w.cfg.CoverSectors
	if len(sectors) == 0 {
		for _, s := range w.cfg.Sectors.All() {
			sectors = append(sectors, s.ID)
		}
	}
	for _, id := range sectors {
		if _, known := w.cfg.Sectors.Get(id); known && !covered[id] {
			next[alarmKey{EventSectorUncovered, id}] = "no available unit inside"
		}
	}

	// Clears first, then raises, each in a stable order.
	var keys []alarmKey
	for k := range w.active {
		if _, still := next[k]; !still {
			keys = append(keys, k)
		}
	}
	sortKeys(keys)
	for _, k := range keys {
		delete(w.active, k)
		w.cfg.Emit(w.event(k, true, "", now))
	}
	keys = keys[:0]
	for k := range next {
		if !w.active[k] {
			keys = append(keys, k)
		}
	}
	sortKeys(keys)
	for _, k := range keys {
		w.active[k] = true
		w.cfg.Emit(w.event(k, false, next[k], now))
	}
}

func sortKeys(k []alarmKey) {
	slices.SortFunc(k, func(a, b alarmKey) int {
		if a.kind != b.kind {
			if a.kind < b.kind {
				return -1
			}
			return 1
		}
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
}

func (w *Watcher) event(k alarmKey, cleared bool, detail string, now time.Time) Event {
	ev := Event{Kind: k.kind, Cleared: cleared, At: now, Detail: detail}
	if k.kind == EventSectorUncovered {
		ev.SectorID = k.id
		if !cleared {
			if s, ok := w.cfg.Sectors.Get(k.id); ok {
				ev.MoveUp, _ = w.cfg.Units.Nearest(NearestQuery{
					Point: s.Centroid, K: w.cfg.MoveUpK, Statuses: w.cfg.AvailableStatuses,
					MaxAge: w.cfg.StaleAfter, Now: now,
				})
			}
		}
		return ev
	}
	ev.UnitID = k.id
	if u, ok := w.cfg.Units.Unit(k.id); ok {
		ev.SectorID = u.Sector
	}
	return ev
}
