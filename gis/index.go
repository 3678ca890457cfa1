package gis

import (
	"fmt"
	"math"
	"slices"
	"strings"
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
	// ByTime, when set, orders units by straight-line travel time (distance
	// × detour ÷ speed of the unit's kind) instead of distance; Nearest
	// then returns the K quickest to arrive (exact, see search).
	ByTime *StraightLine
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
	it     item // the tree's copy, valid while inTree
	inTree bool
	slot   uint32 // index in Index.slots
}

// item is what the R-tree holds for a unit: its position plus the
// attributes queries filter on (status, agency and kind as interned
// numbers, fix time), so a search rejects busy, other-agency and old units from the
// tree's leaves without following the pointer to each entry (a cache miss
// per unit at 100,000 units). It names its entry by slot number, not by
// pointer, so the tree's leaves hold no pointers and the garbage collector
// does not scan them.
type item struct {
	slot   uint32
	t      int64 // fix time, Unix nanoseconds
	status uint32
	agency uint32
	kind   uint32
	pt     [2]float64 // [lon, lat] as stored in the tree
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
	tr    rtree.RTreeG[item]
	units map[string]*entry
	slots []*entry // by entry.slot; nil = free
	free  []uint32
	// Status, agency and kind strings are interned to small numbers for item;
	// a string is never forgotten (the vocabularies are a few dozen words).
	names map[string]uint32
	words []string // words[id] is the string of names[string] == id
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{units: make(map[string]*entry), names: make(map[string]uint32), words: []string{""}}
}

// intern returns s's number, assigning the next one to a new string
// (write lock held). 0 is the empty string.
func (ix *Index) intern(s string) uint32 {
	if s == "" {
		return 0
	}
	id, ok := ix.names[s]
	if !ok {
		id = uint32(len(ix.words))
		ix.names[s] = id
		ix.words = append(ix.words, s)
	}
	return id
}

// lookup returns s's number without assigning one (read lock held); ok
// is false for a string no unit ever had.
func (ix *Index) lookup(s string) (uint32, bool) {
	if s == "" {
		return 0, true
	}
	id, ok := ix.names[s]
	return id, ok
}

// place puts e's current position and attributes into the tree, replacing
// the item it had there (write lock held).
func (ix *Index) place(e *entry) {
	if e.inTree {
		ix.tr.Delete(e.it.pt, e.it.pt, e.it)
		e.inTree = false
	}
	if !e.hasFix {
		e.it = item{}
		return
	}
	e.it = item{slot: e.slot, t: e.fix.Time.UnixNano(), status: ix.intern(e.info.Status), agency: ix.intern(e.info.Agency),
		kind: ix.intern(e.info.Kind), pt: [2]float64{e.fix.Lon, e.fix.Lat}}
	ix.tr.Insert(e.it.pt, e.it.pt, e.it)
	e.inTree = true
}

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
		ix.newEntry(u)
		return nil
	}
	moved := e.info.Status != u.Status || e.info.Agency != u.Agency || e.info.Kind != u.Kind
	e.info = u
	if moved && e.hasFix {
		ix.place(e)
	}
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
	if e.inTree {
		ix.tr.Delete(e.it.pt, e.it.pt, e.it)
	}
	delete(ix.units, id)
	ix.slots[e.slot] = nil
	ix.free = append(ix.free, e.slot)
	return true
}

// newEntry adds a unit without a position (write lock held).
func (ix *Index) newEntry(u UnitInfo) *entry {
	e := &entry{info: u}
	if n := len(ix.free); n > 0 {
		e.slot = ix.free[n-1]
		ix.free = ix.free[:n-1]
		ix.slots[e.slot] = e
	} else {
		e.slot = uint32(len(ix.slots))
		ix.slots = append(ix.slots, e)
	}
	ix.units[u.ID] = e
	return e
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
		e = ix.newEntry(UnitInfo{ID: id})
	}
	if e.hasFix && !f.Time.After(e.fix.Time) {
		return false
	}
	e.fix, e.hasFix = f, true
	ix.place(e)
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
	ix.tr.Search([2]float64{b.MinLon, b.MinLat}, [2]float64{b.MaxLon, b.MaxLat}, func(_, _ [2]float64, it item) bool {
		return fn(ix.slots[it.slot].state())
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
// great-circle distance (ties by id). See search for how.
func (ix *Index) Nearest(q NearestQuery) ([]Candidate, error) {
	return ix.NearestAppend(nil, q)
}

// NearestAppend is Nearest appending to dst, for callers that reuse a
// buffer.
func (ix *Index) NearestAppend(dst []Candidate, q NearestQuery) ([]Candidate, error) {
	if err := q.check(false); err != nil {
		return dst, err
	}
	return ix.search(q, dst), nil
}

// Within returns the units matching the filters within q.Radius metres,
// nearest first (at most q.K if K > 0).
func (ix *Index) Within(q NearestQuery) ([]Candidate, error) {
	if err := q.check(true); err != nil {
		return nil, err
	}
	return ix.search(q, nil), nil
}

// filter is a NearestQuery compiled against the interned names, tested on
// tree items without touching entries (capabilities, rarely asked for, do
// need the entry).
type filter struct {
	statuses []uint32 // nil = any
	agency   uint32
	anyAgy   bool
	minT     int64 // fix time ≥ minT; math.MinInt64 = any age
	caps     []string
	slots    []*entry
}

// compile returns the filter, or ok false when no unit can match (a status
// or agency that no unit ever had). Read lock held.
func (ix *Index) compile(q *NearestQuery) (f filter, ok bool) {
	f.minT, f.caps, f.anyAgy, f.slots = math.MinInt64, q.Capabilities, q.Agency == "", ix.slots
	if q.MaxAge > 0 {
		now := q.Now
		if now.IsZero() {
			now = time.Now()
		}
		f.minT = now.Add(-q.MaxAge).UnixNano()
	}
	if !f.anyAgy {
		if f.agency, ok = ix.lookup(q.Agency); !ok {
			return f, false
		}
	}
	if len(q.Statuses) > 0 {
		f.statuses = make([]uint32, 0, len(q.Statuses))
		for _, st := range q.Statuses {
			if id, ok := ix.lookup(st); ok {
				f.statuses = append(f.statuses, id)
			}
		}
		if len(f.statuses) == 0 {
			return f, false
		}
	}
	return f, true
}

func (f *filter) match(it *item) bool {
	if it.t < f.minT || (!f.anyAgy && it.agency != f.agency) {
		return false
	}
	if f.statuses != nil && !slices.Contains(f.statuses, it.status) {
		return false
	}
	return len(f.caps) == 0 || f.slots[it.slot].info.HasAll(f.caps)
}

// hit is a matching item, its haversine term and the key it is ranked by
// (the term itself, or the travel time in seconds). No pointers: moving
// hits around needs no write barriers.
type hit struct {
	key, a float64
	slot   uint32
}

// hitOrder orders hits by key, ties by unit id.
func hitOrder(slots []*entry) func(x, y hit) int {
	return func(x, y hit) int {
		if x.key != y.key {
			if x.key < y.key {
				return -1
			}
			return 1
		}
		return strings.Compare(slots[x.slot].info.ID, slots[y.slot].info.ID)
	}
}

// keepNearest inserts h into hits, which is sorted and holds at most k:
// most units of a search are farther than the k-th and cost one compare.
func keepNearest(hits []hit, k int, h hit, cmp func(x, y hit) int) []hit {
	n := len(hits)
	if n == k && cmp(h, hits[n-1]) >= 0 {
		return hits
	}
	i, _ := slices.BinarySearchFunc(hits, h, cmp)
	if n < k {
		hits = append(hits, hit{})
	}
	copy(hits[i+1:], hits[i:])
	hits[i] = h
	return hits
}

var hitPool = sync.Pool{New: func() any { s := make([]hit, 0, 256); return &s }}

// search answers Nearest and Within by rectangle searches of growing
// circles around the point: every matching unit inside a circle of radius
// r is collected (the R-tree visits only leaves that meet the circle's
// bounding box, and the filters run on the items in the leaves); once K
// matches lie within r, no unit outside can be nearer than the K-th, so the
// K nearest are exact (TestNearestMatchesBruteForce). The first radius
// comes from the tree's density, and each retry grows it by the shortfall.
// This replaced a best-first walk (rtree.Nearby), which pushed every item
// of every leaf it opened through a priority queue: 31 µs per k=10 query at
// 100,000 units against 10.8 µs now (BenchmarkNearestSingle).
func (ix *Index) search(q NearestQuery, out []Candidate) []Candidate {
	o := newOrigin(q.Point)
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	f, ok := ix.compile(&q)
	n := ix.tr.Len()
	if !ok || n == 0 {
		return out
	}
	hp := hitPool.Get().(*[]hit)
	defer func() {
		if cap(*hp) <= 4096 { // a huge Within answer is not kept
			hitPool.Put(hp)
		}
	}()
	hits := (*hp)[:0]
	tmin, tmax := ix.tr.Bounds()
	r := q.Radius
	if q.K > 0 {
		r = firstRadius(&ix.tr, n, q.K)
		if q.Radius > 0 {
			r = min(r, q.Radius)
		}
	}
	order := hitOrder(ix.slots)
	var tk *timeKey
	if q.ByTime != nil {
		tk = ix.newTimeKey(q.ByTime)
	}
	for {
		hits = hits[:0]
		limitA := metresToA(r)
		found := 0
		all := circleBoxes(o, r, func(min, max [2]float64) bool {
			ix.tr.Search(min, max, func(_, _ [2]float64, it item) bool {
				if !f.match(&it) {
					return true
				}
				a := o.pointA(it.pt[1], it.pt[0])
				if a > limitA {
					return true
				}
				found++
				h := hit{key: a, a: a, slot: it.slot}
				if tk != nil {
					h.key = tk.seconds(a, it.kind)
				}
				if q.K > 0 {
					hits = keepNearest(hits, q.K, h, order)
				} else {
					hits = append(hits, h)
				}
				return true
			})
			// Every unit was looked at: growing further finds nothing new.
			return min[0] <= tmin[0] && min[1] <= tmin[1] && max[0] >= tmax[0] && max[1] >= tmax[1]
		})
		if q.K <= 0 || all || r == q.Radius || r >= math.Pi*EarthRadius {
			break
		}
		if found >= q.K {
			if tk == nil {
				break
			}
			// By time, a unit outside r needs at least r × detour ÷ the
			// fastest speed: if the K-th found is quicker, none beats it.
			kth := hits[q.K-1].key
			if kth <= tk.lowerBound(r) {
				break
			}
			r = max(r*1.01, tk.reach(kth))
		} else {
			// Grow by the shortfall (matches grow with the area), at
			// least ×1.5, at most ×4.
			grow := 4.0
			if found > 0 {
				grow = clamp(1.2*math.Sqrt(float64(q.K)/float64(found)), 1.5, 4)
			}
			r *= grow
		}
		if q.Radius > 0 && r > q.Radius {
			r = q.Radius
		}
	}
	*hp = hits
	if q.K <= 0 {
		slices.SortFunc(hits, order)
	}
	out = slices.Grow(out, len(hits))
	for _, h := range hits {
		out = append(out, Candidate{UnitState: ix.slots[h.slot].state(), Distance: hav2m(h.a)})
	}
	return out
}

// timeKey ranks by straight-line travel time with speeds looked up per
// interned kind (read lock held while in use).
type timeKey struct {
	detour, vmax float64
	speed        []float64 // by kind number; 0 = not looked up yet
	sl           *StraightLine
	words        []string
}

func (ix *Index) newTimeKey(sl *StraightLine) *timeKey {
	return &timeKey{detour: sl.detour(), vmax: sl.maxSpeed(), sl: sl, words: ix.words, speed: make([]float64, len(ix.words))}
}

func (tk *timeKey) seconds(a float64, kind uint32) float64 {
	v := tk.speed[kind]
	if v == 0 {
		v = tk.sl.speed(tk.words[kind])
		tk.speed[kind] = v
	}
	return hav2m(a) * tk.detour / v
}

// lowerBound is the least time of any unit farther than r metres.
func (tk *timeKey) lowerBound(r float64) float64 { return r * tk.detour / tk.vmax }

// reach is the distance beyond which no unit can arrive within t seconds.
func (tk *timeKey) reach(t float64) float64 { return t * tk.vmax / tk.detour }

// firstRadius guesses the radius holding k units from the tree's mean
// density (the bounding box of all units), doubled for the filters.
func firstRadius(tr *rtree.RTreeG[item], n, k int) float64 {
	min, max := tr.Bounds()
	midLat := (min[1] + max[1]) / 2 * deg
	w := (max[0] - min[0]) * deg * EarthRadius * math.Cos(midLat)
	h := (max[1] - min[1]) * deg * EarthRadius
	area := math.Max(w*h, 1e4) // at least 100 × 100 m
	r := 2 * math.Sqrt(float64(k)*area/(float64(n)*math.Pi))
	return clamp(r, 50, math.Pi*EarthRadius)
}

// circleBoxes calls fn with lon/lat rectangles that together cover the
// spherical cap of radius r metres around o (two when the cap crosses the
// antimeridian), and reports whether they cover the whole globe or fn
// reported (true) that its rectangle covered everything of interest. The
// longitude half-width of a cap of angular radius δ at latitude φ is
// asin(sin δ / cos φ); a cap that reaches a pole spans every longitude.
func circleBoxes(o origin, r float64, fn func(min, max [2]float64) bool) (all bool) {
	d := r / EarthRadius
	if d >= math.Pi {
		fn([2]float64{-180, -90}, [2]float64{180, 90})
		return true
	}
	dLat := d / deg
	minLat, maxLat := o.lat-dLat, o.lat+dLat
	// (sin δ ≥ cos φ is the same test as reaching a pole; it also keeps
	// the asin below in its domain under rounding.)
	if minLat <= -90 || maxLat >= 90 || math.Sin(d) >= o.cosLat {
		covered := fn([2]float64{-180, math.Max(minLat, -90)}, [2]float64{180, math.Min(maxLat, 90)})
		return covered || (minLat <= -90 && maxLat >= 90)
	}
	dLon := math.Asin(math.Sin(d)/o.cosLat) / deg
	// A hair wider than exact, so rounding never drops a unit on the edge.
	dLat, dLon = dLat*(1+1e-9)+1e-9, dLon*(1+1e-9)+1e-9
	minLat, maxLat = math.Max(o.lat-dLat, -90), math.Min(o.lat+dLat, 90)
	minLon, maxLon := o.lon-dLon, o.lon+dLon
	switch {
	case minLon < -180:
		fn([2]float64{minLon + 360, minLat}, [2]float64{180, maxLat})
		fn([2]float64{-180, minLat}, [2]float64{maxLon, maxLat})
		return false
	case maxLon > 180:
		fn([2]float64{minLon, minLat}, [2]float64{180, maxLat})
		fn([2]float64{-180, minLat}, [2]float64{maxLon - 360, maxLat})
		return false
	}
	return fn([2]float64{minLon, minLat}, [2]float64{maxLon, maxLat})
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
