package gis

import (
	"encoding/json"
	"sort"
	"sync"
	"time"
)

// histFix is a fix as kept in the embedded history: 40 bytes instead of
// Fix's ~110 (device id, altitude and battery are not kept; a track does not
// need them).
type histFix struct {
	ms       int64
	lat, lon float64
	spd, hdg float32
	acc      float32
}

func toHist(f Fix) histFix {
	return histFix{ms: f.Time.UnixMilli(), lat: f.Lat, lon: f.Lon, spd: float32(f.Speed), hdg: float32(f.Heading), acc: float32(f.Accuracy)}
}

func (h histFix) fix() Fix {
	return Fix{Lat: h.lat, Lon: h.lon, Time: time.UnixMilli(h.ms).UTC(), Speed: float64(h.spd), Heading: float64(h.hdg),
		Accuracy: float64(h.acc), Battery: Unknown}
}

// ring is the embedded-mode history of one unit: the last n fixes in time
// order (fixes arrive in order because the index drops older ones). It
// grows by append up to n, so idle units cost little.
type ring struct {
	buf  []histFix
	n    int
	next int // once full: index of the oldest entry
}

func (r *ring) add(f Fix) {
	if len(r.buf) < r.n {
		r.buf = append(r.buf, toHist(f))
		return
	}
	r.buf[r.next] = toHist(f)
	r.next = (r.next + 1) % r.n
}

// each visits the fixes oldest first.
func (r *ring) each(fn func(Fix) bool) {
	for _, h := range r.buf[r.next:] {
		if !fn(h.fix()) {
			return
		}
	}
	for _, h := range r.buf[:r.next] {
		if !fn(h.fix()) {
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
		r = &ring{n: h.n}
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
			r = &ring{n: h.n}
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
