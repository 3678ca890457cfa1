package gis

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Almaty test area: 40 × 40 km around 43.238N 76.945E.
const (
	almatyLat = 43.238
	almatyLon = 76.945
	boxDLat   = 20000.0 / 111195 // ≈ 20 km in degrees of latitude
)

var boxDLon = boxDLat / 0.7288 // cos(43.238°)

// gridSectors builds n×n square sectors covering the Almaty box, each with
// vertsPerSide×4 vertices, as GeoJSON.
func gridSectors(n, vertsPerSide int) []byte {
	minLon, minLat := almatyLon-boxDLon, almatyLat-boxDLat
	w, h := 2*boxDLon/float64(n), 2*boxDLat/float64(n)
	var feats []string
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			x0, y0 := minLon+float64(i)*w, minLat+float64(j)*h
			var ring [][2]float64
			for k := 0; k < vertsPerSide; k++ {
				ring = append(ring, [2]float64{x0 + w*float64(k)/float64(vertsPerSide), y0})
			}
			for k := 0; k < vertsPerSide; k++ {
				ring = append(ring, [2]float64{x0 + w, y0 + h*float64(k)/float64(vertsPerSide)})
			}
			for k := 0; k < vertsPerSide; k++ {
				ring = append(ring, [2]float64{x0 + w - w*float64(k)/float64(vertsPerSide), y0 + h})
			}
			for k := 0; k < vertsPerSide; k++ {
				ring = append(ring, [2]float64{x0, y0 + h - h*float64(k)/float64(vertsPerSide)})
			}
			ring = append(ring, ring[0])
			c, _ := json.Marshal([][][2]float64{ring})
			feats = append(feats, fmt.Sprintf(`{"type":"Feature","properties":{"id":"s-%d-%d","name":"Sector %d/%d"},"geometry":{"type":"Polygon","coordinates":%s}}`, i, j, i, j, c))
		}
	}
	return []byte(`{"type":"FeatureCollection","features":[` + strings.Join(feats, ",") + `]}`)
}

// Two districts of Astana-like shape: one with a hole (a park not patrolled
// by this sector), one MultiPolygon (a district with an exclave).
const sectorsFixture = `{"type":"FeatureCollection","features":[
 {"type":"Feature","id":"ignored-feature-id","properties":{"id":"almaly-1","name":"Алмалы 1"},
  "geometry":{"type":"Polygon","coordinates":[
   [[76.90,43.20],[77.00,43.20],[77.00,43.30],[76.90,43.30],[76.90,43.20]],
   [[76.94,43.24],[76.96,43.24],[76.96,43.26],[76.94,43.26],[76.94,43.24]]]}},
 {"type":"Feature","properties":{"id":"medeu-2","name":"Медеу 2"},
  "geometry":{"type":"MultiPolygon","coordinates":[
   [[[77.00,43.20],[77.10,43.20],[77.10,43.30],[77.00,43.30],[77.00,43.20]]],
   [[[77.20,43.20],[77.22,43.20],[77.22,43.22],[77.20,43.20]]]]}},
 {"type":"Feature","id":7,"properties":{"name":"Park"},
  "geometry":{"type":"Polygon","coordinates":[[[76.945,43.245],[76.955,43.245],[76.955,43.255],[76.945,43.255],[76.945,43.245]]]}}
]}`

func TestSectorsLoadAndLookup(t *testing.T) {
	si := NewSectorIndex()
	n, err := si.Load([]byte(sectorsFixture))
	if err != nil || n != 3 {
		t.Fatalf("Load: %d %v", n, err)
	}
	tests := []struct {
		p    Point
		want string
	}{
		{Point{43.21, 76.91}, "almaly-1"},
		{Point{43.25, 76.935}, "almaly-1"},
		{Point{43.25, 76.95}, "7"},  // inside the hole, inside the park
		{Point{43.242, 76.958}, ""}, // inside the hole, outside the park
		{Point{43.25, 77.05}, "medeu-2"},
		{Point{43.205, 77.215}, "medeu-2"}, // exclave triangle
		{Point{43.215, 77.205}, ""},        // beside the triangle
		{Point{43.5, 76.9}, ""},
	}
	for _, tt := range tests {
		s, ok := si.Lookup(tt.p)
		got := ""
		if ok {
			got = s.ID
		}
		if got != tt.want {
			t.Errorf("Lookup(%v) = %q, want %q", tt.p, got, tt.want)
		}
	}
	if s, _ := si.Get("almaly-1"); s.Name != "Алмалы 1" {
		t.Errorf("name %q", s.Name)
	}
	if !si.Contains("medeu-2", Point{43.25, 77.05}) || si.Contains("almaly-1", Point{43.25, 77.05}) {
		t.Error("Contains")
	}
}

func TestSectorsBadInput(t *testing.T) {
	poly := func(coords string) string {
		return `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"a"},"geometry":{"type":"Polygon","coordinates":` + coords + `}}]}`
	}
	tests := []struct {
		name, body, msg string
		want            error
	}{
		{"unclosed ring", poly(`[[[76.9,43.2],[77,43.2],[77,43.3],[76.9,43.3]]]`), "not closed", ErrBadGeoJSON},
		{"three positions", poly(`[[[76.9,43.2],[77,43.2],[76.9,43.2]]]`), "at least 4", ErrBadGeoJSON},
		{"latitude out of range", poly(`[[[76.9,43.2],[77,93.2],[77,43.3],[76.9,43.2]]]`), "out of range", ErrBadGeoJSON},
		{"lat/lon swapped beyond 90", poly(`[[[43.2,176.9],[43.3,176.9],[43.3,177],[43.2,176.9]]]`), "out of range", ErrBadGeoJSON},
		{"point geometry", `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"a"},"geometry":{"type":"Point","coordinates":[76.9,43.2]}}]}`, "Polygon or MultiPolygon", ErrBadGeoJSON},
		{"missing id", `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"x"},"geometry":{"type":"Polygon","coordinates":[[[76.9,43.2],[77,43.2],[77,43.3],[76.9,43.2]]]}}]}`, "missing properties.id", ErrBadGeoJSON},
		{"not a collection", `{"type":"Feature"}`, "FeatureCollection", ErrBadGeoJSON},
		{"coordinates are strings", poly(`[[["76.9","43.2"]]]`), "", ErrBadGeoJSON},
		{"not JSON", `{"type":`, "not JSON", ErrBadGeoJSON},
		{"too large", strings.Repeat(" ", MaxGeoJSONBytes+1), "limit", ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			si := NewSectorIndex()
			if _, err := si.Load([]byte(sectorsFixture)); err != nil {
				t.Fatal(err)
			}
			_, err := si.Load([]byte(tt.body))
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err %v, want %v with %q", err, tt.want, tt.msg)
			}
			if si.Len() != 3 {
				t.Fatalf("failed load changed the sectors: %d", si.Len())
			}
		})
	}
	// One bad feature among good ones: nothing is stored.
	si := NewSectorIndex()
	mixed := strings.Replace(sectorsFixture, `[77.22,43.22],[77.20,43.20]`, `[77.22,43.22],[77.20,43.21]`, 1)
	if _, err := si.Load([]byte(mixed)); !errors.Is(err, ErrBadGeoJSON) || si.Len() != 0 {
		t.Fatalf("mixed: %v, %d stored", err, si.Len())
	}
}

func FuzzLoadSectors(f *testing.F) {
	f.Add([]byte(sectorsFixture))
	f.Add(gridSectors(2, 3))
	f.Add([]byte(`{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"MultiPolygon","coordinates":[[[]]]},"properties":{"id":1}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		si := NewSectorIndex()
		n, err := si.Load(b)
		if err != nil {
			if si.Len() != 0 {
				t.Fatal("error but sectors stored")
			}
			return
		}
		if n != si.Len() {
			t.Fatal("count mismatch")
		}
		for _, s := range si.All() {
			si.Lookup(s.Centroid)
		}
	})
}

func TestWatcher(t *testing.T) {
	si := NewSectorIndex()
	if _, err := si.Load([]byte(sectorsFixture)); err != nil {
		t.Fatal(err)
	}
	ix := NewIndex()
	var events []Event
	w, err := NewWatcher(WatcherConfig{Units: ix, Sectors: si, Emit: func(e Event) { events = append(events, e) },
		StaleAfter: time.Minute, MaxAccuracy: 100, CoverSectors: []string{"almaly-1", "medeu-2"}})
	if err != nil {
		t.Fatal(err)
	}
	mustSet := func(u UnitInfo) {
		if err := ix.SetUnit(u); err != nil {
			t.Fatal(err)
		}
	}
	fix := func(lat, lon float64, at time.Time, acc float64) Fix {
		return Fix{DeviceID: "d", Lat: lat, Lon: lon, Time: at, Speed: Unknown, Heading: Unknown, Accuracy: acc, Battery: Unknown}
	}
	mustSet(UnitInfo{ID: "p1", Agency: "police", Kind: "car", Status: "available", Sector: "almaly-1"})
	mustSet(UnitInfo{ID: "p2", Agency: "police", Kind: "car", Status: "available", Sector: "medeu-2"})
	ix.Update("p1", fix(43.21, 76.91, now0, 10))
	ix.Update("p2", fix(43.25, 77.05, now0, 10))

	take := func() []string {
		var s []string
		for _, e := range events {
			id := e.UnitID
			if e.Kind == EventSectorUncovered {
				id = e.SectorID
			}
			s = append(s, fmt.Sprintf("%s %s cleared=%v", e.Kind, id, e.Cleared))
		}
		events = nil
		return s
	}
	w.Check(now0)
	if got := take(); len(got) != 0 {
		t.Fatalf("all fine, got %v", got)
	}
	// p2 drives out of medeu-2 into almaly-1: left its sector, medeu-2 uncovered.
	ix.Update("p2", fix(43.22, 76.92, now0.Add(10*time.Second), 10))
	w.Check(now0.Add(10 * time.Second))
	if got := strings.Join(take(), "; "); got != "sector_uncovered medeu-2 cleared=false; unit_left_sector p2 cleared=false" {
		t.Fatalf("got %s", got)
	}
	// Raised once only.
	w.Check(now0.Add(11 * time.Second))
	if got := take(); len(got) != 0 {
		t.Fatalf("repeat: %v", got)
	}
	// p2 returns with an inaccurate fix.
	ix.Update("p2", fix(43.25, 77.05, now0.Add(20*time.Second), 500))
	w.Check(now0.Add(20 * time.Second))
	if got := strings.Join(take(), "; "); got != "sector_uncovered medeu-2 cleared=true; unit_left_sector p2 cleared=true; fix_inaccurate p2 cleared=false" {
		t.Fatalf("got %s", got)
	}
	// p1 goes silent, then almaly-1 is no longer covered by a live unit.
	ix.Update("p2", fix(43.25, 77.05, now0.Add(90*time.Second), 10))
	w.Check(now0.Add(90 * time.Second))
	got := take()
	if strings.Join(got, "; ") != "fix_inaccurate p2 cleared=true; sector_uncovered almaly-1 cleared=false; unit_signal_stale p1 cleared=false" {
		t.Fatalf("got %v", got)
	}
}

func TestWatcherMoveUp(t *testing.T) {
	si := NewSectorIndex()
	if _, err := si.Load([]byte(sectorsFixture)); err != nil {
		t.Fatal(err)
	}
	ix := NewIndex()
	var events []Event
	w, _ := NewWatcher(WatcherConfig{Units: ix, Sectors: si, Emit: func(e Event) { events = append(events, e) }, CoverSectors: []string{"medeu-2"}, MoveUpK: 2})
	for i, lon := range []float64{76.91, 76.93, 76.95} {
		id := fmt.Sprintf("u%d", i)
		_ = ix.SetUnit(UnitInfo{ID: id, Agency: "police", Status: "available"})
		ix.Update(id, Fix{Lat: 43.21, Lon: lon, Time: now0})
	}
	w.Check(now0)
	if len(events) != 1 || events[0].Kind != EventSectorUncovered || len(events[0].MoveUp) != 2 || events[0].MoveUp[0].ID != "u2" {
		t.Fatalf("events %+v", events)
	}
}
