package gis

import (
	"encoding/json"
	"sort"
	"sync"
	"time"
)

// ring is the embedded-mode history of one unit: the last n fixes in time
// order (fixes arrive in order because the index drops older ones).
type ring struct {
	buf  []Fix
	next int
	full bool
}

func (r *ring) add(f Fix) {
	if r.full || r.next < len(r.buf) {
		r.buf[r.next] = f
	}
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// each visits the fixes oldest first.
func (r *ring) each(fn func(Fix) bool) {
	if r.full {
		for _, f := range r.buf[r.next:] {
			if !fn(f) {
				return
			}
		}
	}
	for _, f := range r.buf[:r.next] {
		if !fn(f) {
			return
		}
	}
}

// memHistory holds a ring per unit, guarded by its own mutex (never held
// together with Index.mu).
type memHistory struct {
	mu    sync.Mutex
	n     int
	units map[string]*ring
}

func newMemHistory(n int) *memHistory { return &memHistory{n: n, units: make(map[string]*ring)} }

func (h *memHistory) add(id string, f Fix) {
	h.mu.Lock()
	r := h.units[id]
	if r == nil {
		r = &ring{buf: make([]Fix, h.n)}
		h.units[id] = r
	}
	r.add(f)
	h.mu.Unlock()
}

func (h *memHistory) addBatch(b []UnitFix, applied []bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range b {
		if !applied[i] {
			continue
		}
		r := h.units[b[i].UnitID]
		if r == nil {
			r = &ring{buf: make([]Fix, h.n)}
			h.units[b[i].UnitID] = r
		}
		r.add(b[i].Fix)
	}
}

func (h *memHistory) remove(id string) {
	h.mu.Lock()
	delete(h.units, id)
	h.mu.Unlock()
}

func (h *memHistory) track(id string, from, to time.Time) []Fix {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.units[id]
	if r == nil {
		return nil
	}
	var out []Fix
	r.each(func(f Fix) bool {
		if f.Time.After(to) {
			return false
		}
		if !f.Time.Before(from) {
			out = append(out, f)
		}
		return true
	})
	return out
}

func (h *memHistory) at(t time.Time) []UnitFix {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []UnitFix
	for id, r := range h.units {
		var last Fix
		var ok bool
		r.each(func(f Fix) bool {
			if f.Time.After(t) {
				return false
			}
			last, ok = f, true
			return true
		})
		if ok {
			out = append(out, UnitFix{UnitID: id, Fix: last})
		}
	}
	sortUnitFixes(out)
	return out
}

func sortUnitFixes(s []UnitFix) {
	sort.Slice(s, func(i, j int) bool { return s[i].UnitID < s[j].UnitID })
}

// TrackGeoJSON encodes a unit's fixes as an RFC 7946 Feature
// (https://www.rfc-editor.org/rfc/rfc7946#section-3.1.4): a LineString in
// [lon, lat] order when there are two or more fixes, a Point for one, null
// geometry for none. properties.times holds each position's RFC 3339 time,
// in the same order as the coordinates.
func TrackGeoJSON(unitID string, fixes []Fix) ([]byte, error) {
	type geometry struct {
		Type        string `json:"type"`
		Coordinates any    `json:"coordinates"`
	}
	coords := make([][2]float64, len(fixes))
	times := make([]string, len(fixes))
	for i, f := range fixes {
		coords[i] = [2]float64{f.Lon, f.Lat}
		times[i] = f.Time.UTC().Format(time.RFC3339Nano)
	}
	var g *geometry
	switch len(fixes) {
	case 0:
	case 1:
		g = &geometry{Type: "Point", Coordinates: coords[0]}
	default:
		g = &geometry{Type: "LineString", Coordinates: coords}
	}
	return json.Marshal(struct {
		Type       string    `json:"type"`
		Geometry   *geometry `json:"geometry"`
		Properties any       `json:"properties"`
	}{"Feature", g, map[string]any{"unit": unitID, "times": times}})
}
