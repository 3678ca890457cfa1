package gis

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/tidwall/rtree"
)

// UnitInfo are the attributes of a unit that queries filter on. They are
// pushed by the dispatch projection (SetUnit) whenever a unit's status or
// equipment changes.
type UnitInfo struct {
	ID           string   `json:"id"`
	Agency       string   `json:"agency"`           // "police", "national_guard"
	Kind         string   `json:"kind"`             // "car", "foot", "motorcycle", "tablet_post"
	Status       string   `json:"status"`           // dispatch status code, e.g. "available"
	Capabilities []string `json:"caps,omitempty"`   // e.g. "k9", "medic", "armed"
	Label        string   `json:"label,omitempty"`  // call sign shown on the map
	Sector       string   `json:"sector,omitempty"` // assigned sector id, "" if none
	Name         string   `json:"name,omitempty"`
}

func (u UnitInfo) validate() error {
	if u.ID == "" || len(u.ID) > MaxDeviceIDLen {
		return fmt.Errorf("%w: id must be 1..%d bytes", ErrBadUnit, MaxDeviceIDLen)
	}
	if u.Agency == "" {
		return fmt.Errorf("%w: unit %q has no agency", ErrBadUnit, u.ID)
	}
	return nil
}

// HasAll reports whether the unit has every capability in req.
func (u UnitInfo) HasAll(req []string) bool {
	for _, r := range req {
		if !slices.Contains(u.Capabilities, r) {
			return false
		}
	}
	return true
}

// UnitState is a unit with its latest fix (HasFix false: none yet).
type UnitState struct {
	UnitInfo
	Fix    Fix  `json:"fix"`
	HasFix bool `json:"has_fix"`
}

// Candidate is a unit found by a query, with its great-circle distance.
type Candidate struct {
	UnitState
	Distance float64 `json:"distance_m"`
}

// NearestQuery selects units around a point. Zero fields do not filter.
type NearestQuery struct {
	Point        Point
	K            int           // at most K results (Nearest requires K ≥ 1; Within: 0 = all)
	Radius       float64       // metres; 0 = unlimited (Within requires > 0)
	Statuses     []string      // unit status must be one of these
	Agency       string        // unit agency must equal this
	Capabilities []string      // unit must have all of these
	MaxAge       time.Duration // latest fix must be at most this old
	Now          time.Time     // reference for MaxAge; zero = time.Now()
}

func (q *NearestQuery) check(within bool) error {
	if err := q.Point.Valid(); err != nil {
		return err
	}
	if badNum(q.Radius) || q.Radius < 0 {
		return fmt.Errorf("%w: radius %v must be ≥ 0 metres", ErrBadQuery, q.Radius)
	}
	if within && q.Radius <= 0 {
		return fmt.Errorf("%w: Within needs a radius > 0 metres", ErrBadQuery)
	}
	if !within && q.K < 1 {
		return fmt.Errorf("%w: k=%d, must be ≥ 1", ErrBadQuery, q.K)
	}
	if q.K < 0 {
		return fmt.Errorf("%w: k=%d is negative", ErrBadQuery, q.K)
	}
	return nil
}

type entry struct {
	info   UnitInfo
	fix    Fix
	hasFix bool
	min    [2]float64 // [lon, lat] as stored in the tree
}

// Index is the in-process spatial index of units: an R-tree over each unit's
// latest position plus a map by id. One RWMutex guards both: queries take the
// read lock and run in parallel, writes (fixes, attribute changes) take the
// write lock per 64 fixes (an R-tree delete + insert each).
// BenchmarkNearestUnderIngest measures queries against a writer. A
// copy-on-write variant (rtree.Copy, tree published by atomic pointer every
// 64 fixes, immutable entries) was built and measured: reader p99 under
// writes fell, but every fix copies the leaves it touches and embedded
// ingest dropped from ≈ 490,000 to ≈ 76,000 fixes/s, below the 100,000/s
// target, so the RWMutex stays (see BENCHMARKS.md, "Queries while fixes are written").
//
// Out-of-order fixes never move a unit backwards in time: a fix not newer
// than the stored one is ignored.
type Index struct {
	mu    sync.RWMutex
	tr    rtree.RTreeG[*entry]
	units map[string]*entry
}

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{units: make(map[string]*entry)} }

// SetUnit creates or updates a unit's attributes, keeping its position.
func (ix *Index) SetUnit(u UnitInfo) error {
	if err := u.validate(); err != nil {
		return err
	}
	u.Capabilities = slices.Clone(u.Capabilities) // callers may reuse theirs
	ix.mu.Lock()
	defer ix.mu.Unlock()
	e := ix.units[u.ID]
	if e == nil {
		ix.units[u.ID] = &entry{info: u}
		return nil
	}
	e.info = u
	return nil
}

// RemoveUnit deletes a unit and its position.
func (ix *Index) RemoveUnit(id string) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	e := ix.units[id]
	if e == nil {
		return false
	}
	if e.hasFix {
		ix.tr.Delete(e.min, e.min, e)
	}
	delete(ix.units, id)
	return true
}

// Update stores f as the unit's position if it is newer than the stored
// one; it reports whether it did. A fix for an id never seen creates a bare
// unit (attributes follow via SetUnit): on a multi-node deployment a remote
// fix can arrive before the attributes.
func (ix *Index) Update(id string, f Fix) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.updateLocked(id, f)
}

// UnitFix is one fix for one unit in a batch.
type UnitFix struct {
	UnitID string `json:"u"`
	Fix    Fix    `json:"f"`
}

// UpdateBatch applies many fixes, 64 per lock acquisition; applied[i]
// says whether batch[i] was newer than what was stored.
func (ix *Index) UpdateBatch(batch []UnitFix, applied []bool) []bool {
	applied = applied[:0]
	// The write lock is taken per 64 fixes, not for the whole batch, so a
	// large batch never stalls queries for more than a few microseconds.
	for start := 0; start < len(batch); start += lockChunk {
		ix.mu.Lock()
		for i := start; i < min(start+lockChunk, len(batch)); i++ {
			applied = append(applied, ix.updateLocked(batch[i].UnitID, batch[i].Fix))
		}
		ix.mu.Unlock()
	}
	return applied
}

func (ix *Index) updateLocked(id string, f Fix) bool {
	e := ix.units[id]
	if e == nil {
		e = &entry{info: UnitInfo{ID: id}}
		ix.units[id] = e
	}
	if e.hasFix && !f.Time.After(e.fix.Time) {
		return false
	}
	p := [2]float64{f.Lon, f.Lat}
	if e.hasFix {
		ix.tr.Delete(e.min, e.min, e)
	}
	e.fix, e.hasFix, e.min = f, true, p
	ix.tr.Insert(p, p, e)
	return true
}

// Unit returns a unit's attributes and latest fix.
func (ix *Index) Unit(id string) (UnitState, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	e := ix.units[id]
	if e == nil {
		return UnitState{}, false
	}
	return e.state(), true
}

func (e *entry) state() UnitState { return UnitState{UnitInfo: e.info, Fix: e.fix, HasFix: e.hasFix} }

// Len is the number of units.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.units)
}

// Units calls fn for every unit (under the read lock: fn must not call back
// into the index).
func (ix *Index) Units(fn func(UnitState) bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	for _, e := range ix.units {
		if !fn(e.state()) {
			return
		}
	}
}

// InBox calls fn for every unit with a position inside the rectangle
// (under the read lock).
func (ix *Index) InBox(b BBox, fn func(UnitState) bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ix.tr.Search([2]float64{b.MinLon, b.MinLat}, [2]float64{b.MaxLon, b.MaxLat}, func(_, _ [2]float64, e *entry) bool {
		return fn(e.state())
	})
}

func (q *NearestQuery) match(e *entry, now time.Time) bool {
	if q.Agency != "" && e.info.Agency != q.Agency {
		return false
	}
	if len(q.Statuses) > 0 && !slices.Contains(q.Statuses, e.info.Status) {
		return false
	}
	if q.MaxAge > 0 && now.Sub(e.fix.Time) > q.MaxAge {
		return false
	}
	return e.info.HasAll(q.Capabilities)
}

// Nearest returns up to q.K units matching the filters, nearest first by
// great-circle distance. It walks the R-tree best-first (rtree.Nearby) with
// a spherical lower bound for each node box (boxLB) and the exact haversine
// term for each unit (origin.pointA), so the first K matches are the true K
// nearest (TestNearestMatchesBruteForce).
func (ix *Index) Nearest(q NearestQuery) ([]Candidate, error) {
	if err := q.check(false); err != nil {
		return nil, err
	}
	return ix.search(q, make([]Candidate, 0, q.K)), nil
}

// Within returns the units matching the filters within q.Radius metres,
// nearest first (at most q.K if K > 0).
func (ix *Index) Within(q NearestQuery) ([]Candidate, error) {
	if err := q.check(true); err != nil {
		return nil, err
	}
	return ix.search(q, nil), nil
}

func (ix *Index) search(q NearestQuery, out []Candidate) []Candidate {
	now := q.Now
	if now.IsZero() && q.MaxAge > 0 {
		now = time.Now()
	}
	limitA := math.Inf(1)
	if q.Radius > 0 {
		limitA = metresToA(q.Radius)
	}
	o := newOrigin(q.Point)
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ix.tr.Nearby(
		func(min, max [2]float64, _ *entry, item bool) float64 {
			if item {
				return o.pointA(min[1], min[0])
			}
			return boxLB(o.lat, o.lon, o.cosLat, min, max)
		},
		func(_, _ [2]float64, e *entry, a float64) bool {
			if a > limitA {
				return false
			}
			if !q.match(e, now) {
				return true
			}
			out = append(out, Candidate{UnitState: e.state(), Distance: hav2m(a)})
			return q.K <= 0 || len(out) < q.K
		},
	)
	return out
}

// BBox is a lon/lat rectangle (a map viewport).
type BBox struct {
	MinLon float64 `json:"min_lon"`
	MinLat float64 `json:"min_lat"`
	MaxLon float64 `json:"max_lon"`
	MaxLat float64 `json:"max_lat"`
}

// Contains reports whether p lies in b (edges included).
func (b BBox) Contains(p Point) bool {
	return p.Lon >= b.MinLon && p.Lon <= b.MaxLon && p.Lat >= b.MinLat && p.Lat <= b.MaxLat
}

// Valid checks ranges and order.
func (b BBox) Valid() error {
	for _, v := range []float64{b.MinLon, b.MinLat, b.MaxLon, b.MaxLat} {
		if badNum(v) {
			return fmt.Errorf("%w: bbox has a non-finite value", ErrBadQuery)
		}
	}
	if b.MinLat < -90 || b.MaxLat > 90 || b.MinLon < -180 || b.MaxLon > 180 || b.MinLat > b.MaxLat || b.MinLon > b.MaxLon {
		return fmt.Errorf("%w: bbox %v must be min_lon ≤ max_lon in -180..180 and min_lat ≤ max_lat in -90..90", ErrBadQuery, b)
	}
	return nil
}

// lockChunk is how many fixes UpdateBatch applies per write-lock hold.
const lockChunk = 64
