package gis

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// RecommendQuery asks for the best units for an incident at Point.
type RecommendQuery struct {
	Point                Point
	RequiredCapabilities []string
	Agency               string        // "" = any agency
	K                    int           // recommendations wanted, default 3
	MaxAge               time.Duration // ignore units whose last fix is older; 0 = no limit
	Now                  time.Time     // zero = time.Now()
}

// Recommendation is one ranked unit with the reasons for its place.
type Recommendation struct {
	Rank          int       `json:"rank"`
	UnitID        string    `json:"unit_id"`
	Label         string    `json:"label,omitempty"`
	Agency        string    `json:"agency"`
	Kind          string    `json:"kind"`
	Status        string    `json:"status"`
	Position      Point     `json:"position"`
	DistanceM     float64   `json:"distance_m"` // great-circle
	ETA           ETA       `json:"eta"`
	CapabilityOK  bool      `json:"capability_match"`
	MissingCaps   []string  `json:"missing_capabilities,omitempty"`
	PositionAgeS  float64   `json:"position_age_s"`
	PositionTime  time.Time `json:"position_time"`
	PositionStale bool      `json:"position_stale"`
	AccuracyM     float64   `json:"accuracy_m"`
}

// Recommender ranks available units by ETA.
type Recommender struct {
	Units             *Index
	ETA               ETAProvider // nil = StraightLine{}
	AvailableStatuses []string    // default ["available"]
	// PoolFactor × K nearest available units are sent to a routing ETA
	// provider (straight-line nearest is not route-nearest); default 3.
	// With StraightLine the index ranks by time and no pool is needed.
	PoolFactor int
}

// recScratch are a recommendation's working slices, reused: a busy
// dispatch centre asks for recommendations thousands of times a second in
// a load test, and these were most of the garbage.
type recScratch struct {
	pool, more []Candidate
	from       []ETAFrom
	etas       []ETA
	order      []ranked
}

// ranked is a pool member's place: capability match first, then ETA.
type ranked struct {
	i       int
	capOK   bool
	seconds float64
}

var scratchPool = sync.Pool{New: func() any { return new(recScratch) }}

func (sc *recScratch) release() {
	if cap(sc.pool)+cap(sc.more) > 1024 {
		return // a rare huge query: not kept
	}
	clear(sc.pool) // drop references to unit strings
	clear(sc.more)
	scratchPool.Put(sc)
}

// Recommend returns up to K available units ranked: units with every
// required capability first, then by ETA. If fewer than K units have all
// required capabilities, the nearest others fill the list, marked with the
// capabilities they miss, so the dispatcher sees the trade-off.
func (r *Recommender) Recommend(ctx context.Context, q RecommendQuery) ([]Recommendation, error) {
	return r.RecommendAppend(ctx, nil, q)
}

// RecommendAppend is Recommend appending to dst, for callers that reuse a
// buffer.
func (r *Recommender) RecommendAppend(ctx context.Context, dst []Recommendation, q RecommendQuery) ([]Recommendation, error) {
	if r.Units == nil {
		return dst, fmt.Errorf("%w: Recommender.Units is nil", ErrBadConfig)
	}
	if q.K == 0 {
		q.K = 3
	}
	if q.K < 0 || q.K > 100 {
		return dst, fmt.Errorf("%w: k=%d outside 1..100", ErrBadQuery, q.K)
	}
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	statuses := r.AvailableStatuses
	if len(statuses) == 0 {
		statuses = []string{"available"}
	}
	eta := r.ETA
	if eta == nil {
		eta = StraightLine{}
	}
	pf := r.PoolFactor
	if pf <= 0 {
		pf = 3
	}
	nq := NearestQuery{Point: q.Point, K: pf * q.K, Statuses: statuses, Agency: q.Agency,
		Capabilities: q.RequiredCapabilities, MaxAge: q.MaxAge, Now: q.Now}
	// With straight-line ETAs the index ranks by travel time itself, so the
	// K quickest are exact and no larger pool is needed. A routing provider
	// gets the pf × K nearest by distance (straight-line nearest is not
	// route-nearest).
	sl, straight := asStraightLine(eta)
	if straight {
		nq.ByTime, nq.K, pf = sl, q.K, 1
	}
	sc := scratchPool.Get().(*recScratch)
	defer sc.release()
	pool, err := r.Units.NearestAppend(sc.pool[:0], nq)
	sc.pool = pool
	if err != nil {
		return dst, err
	}
	if len(pool) < q.K && len(q.RequiredCapabilities) > 0 {
		nq.Capabilities = nil
		nq.K = pf*q.K + len(pool)
		more, err := r.Units.NearestAppend(sc.more[:0], nq)
		sc.more = more
		if err != nil {
			return dst, err
		}
		for _, c := range more {
			if len(pool) >= pf*q.K {
				break
			}
			if !slices.ContainsFunc(pool, func(p Candidate) bool { return p.ID == c.ID }) {
				pool = append(pool, c)
			}
		}
		sc.pool = pool
	}
	if len(pool) == 0 {
		return dst, nil
	}
	from := sc.from[:0]
	for _, c := range pool {
		from = append(from, ETAFrom{Point: c.Fix.Point(), Kind: c.Kind})
	}
	sc.from = from
	var etas []ETA
	if straight { // the usual case: into the reused buffer
		etas = sl.appendETAs(sc.etas[:0], q.Point, from)
		sc.etas = etas
	} else {
		etas, err = eta.ETAs(ctx, q.Point, from)
	}
	if err != nil || len(etas) != len(pool) {
		reason := fmt.Sprintf("%v", err)
		if err == nil {
			reason = fmt.Sprintf("provider returned %d ETAs for %d units", len(etas), len(pool))
		}
		etas, _ = StraightLine{}.ETAs(ctx, q.Point, from)
		for i := range etas {
			etas[i].Fallback = reason
		}
	}
	// Rank on (capability match, ETA) first; only the K kept become full
	// recommendations.
	order := sc.order[:0]
	for i, c := range pool {
		order = append(order, ranked{i, c.HasAll(q.RequiredCapabilities), etas[i].Seconds})
	}
	sc.order = order
	slices.SortStableFunc(order, func(a, b ranked) int {
		if a.capOK != b.capOK {
			if a.capOK {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.seconds, b.seconds)
	})
	order = order[:min(len(order), q.K)]
	out := slices.Grow(dst, len(order))[:len(dst)+len(order)]
	recs := out[len(dst):]
	for r, o := range order {
		c := &pool[o.i]
		var missing []string
		for _, req := range q.RequiredCapabilities {
			if !slices.Contains(c.Capabilities, req) {
				missing = append(missing, req)
			}
		}
		recs[r] = Recommendation{
			Rank:   r + 1,
			UnitID: c.ID, Label: c.Label, Agency: c.Agency, Kind: c.Kind, Status: c.Status,
			Position: c.Fix.Point(), DistanceM: c.Distance, ETA: etas[o.i],
			CapabilityOK: o.capOK, MissingCaps: missing,
			PositionAgeS: q.Now.Sub(c.Fix.Time).Seconds(), PositionTime: c.Fix.Time,
			PositionStale: c.Fix.Stale, AccuracyM: c.Fix.Accuracy,
		}
	}
	return out, nil
}
