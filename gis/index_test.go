package gis

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

var (
	agencies = []string{"police", "national_guard"}
	kinds    = []string{"car", "foot", "motorcycle", "tablet_post"}
)

// randomUnits places n units uniformly in the Almaty box, a third busy.
func randomUnits(rng *rand.Rand, n int, at time.Time) ([]UnitInfo, []UnitFix) {
	infos := make([]UnitInfo, n)
	fixes := make([]UnitFix, n)
	for i := range n {
		st := "available"
		if i%3 == 0 {
			st = "busy"
		}
		var caps []string
		if i%5 == 0 {
			caps = []string{"medic"}
		}
		if i%7 == 0 {
			caps = append(caps, "k9")
		}
		id := fmt.Sprintf("u%06d", i)
		infos[i] = UnitInfo{ID: id, Agency: agencies[i%2], Kind: kinds[i%4], Status: st, Capabilities: caps}
		fixes[i] = UnitFix{UnitID: id, Fix: randomFix(rng, id, at.Add(-time.Duration(rng.IntN(600))*time.Second))}
	}
	return infos, fixes
}

func randomPoint(rng *rand.Rand) Point {
	return Point{Lat: almatyLat + (rng.Float64()*2-1)*boxDLat, Lon: almatyLon + (rng.Float64()*2-1)*boxDLon}
}

func randomFix(rng *rand.Rand, dev string, at time.Time) Fix {
	p := randomPoint(rng)
	return Fix{DeviceID: dev, Lat: p.Lat, Lon: p.Lon, Time: at, Speed: 5, Heading: 90, Accuracy: 10, Battery: 80}
}

func loadIndex(t testing.TB, ix *Index, infos []UnitInfo, fixes []UnitFix) {
	for _, u := range infos {
		if err := ix.SetUnit(u); err != nil {
			t.Fatal(err)
		}
	}
	ix.UpdateBatch(fixes, nil)
}

// bruteNearest is the reference: filter everything, sort by haversine.
func bruteNearest(infos []UnitInfo, fixes []UnitFix, q NearestQuery) []string {
	ids, _ := bruteRanked(infos, fixes, q, func(d float64, _ UnitInfo) float64 { return d })
	return ids
}

// bruteRanked filters every unit and sorts by key(distance, unit), ties by
// id; it returns the first q.K ids and their keys.
func bruteRanked(infos []UnitInfo, fixes []UnitFix, q NearestQuery, key func(d float64, u UnitInfo) float64) ([]string, []float64) {
	type c struct {
		id string
		k  float64
	}
	var all []c
	for i, u := range infos {
		e := &entry{info: u, fix: fixes[i].Fix, hasFix: true}
		d := Distance(q.Point, fixes[i].Fix.Point())
		if (q.Radius == 0 || d <= q.Radius) && q.match(e, q.Now) {
			all = append(all, c{u.ID, key(d, u)})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].k < all[j].k || all[i].k == all[j].k && all[i].id < all[j].id })
	if q.K > 0 && len(all) > q.K {
		all = all[:q.K]
	}
	ids, keys := make([]string, len(all)), make([]float64, len(all))
	for i := range all {
		ids[i], keys[i] = all[i].id, all[i].k
	}
	return ids, keys
}

func TestNearestMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	infos, fixes := randomUnits(rng, 5000, now0)
	ix := NewIndex()
	loadIndex(t, ix, infos, fixes)
	for i := range 300 {
		q := NearestQuery{Point: randomPoint(rng), K: 1 + rng.IntN(20), Now: now0}
		if i%2 == 0 {
			q.Statuses = []string{"available"}
		}
		if i%3 == 0 {
			q.Agency = agencies[rng.IntN(2)]
		}
		if i%4 == 0 {
			q.Capabilities = []string{"medic"}
		}
		if i%5 == 0 {
			q.MaxAge = 5 * time.Minute
		}
		if i%6 == 0 {
			q.Radius = rng.Float64() * 5000
		}
		got, err := ix.Nearest(q)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(got))
		for j, c := range got {
			ids[j] = c.ID
			if d := Distance(q.Point, c.Fix.Point()); abs(d-c.Distance) > 0.01 {
				t.Fatalf("distance %v, haversine %v", c.Distance, d)
			}
		}
		if want := bruteNearest(infos, fixes, q); !slices.Equal(ids, want) {
			t.Fatalf("query %d %+v:\n got %v\nwant %v", i, q, ids, want)
		}
	}
}

// TestNearestWorldwide: units and queries over the whole globe, crowded at
// the poles and on both sides of the antimeridian, where the search
// rectangles wrap or span every longitude; statuses change after the
// units have positions. The index agrees with brute force.
func TestNearestWorldwide(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	point := func() Point {
		switch rng.IntN(4) {
		case 0: // near a pole
			return Point{Lat: (88 + 2*rng.Float64()) * float64(1-2*rng.IntN(2)), Lon: rng.Float64()*360 - 180}
		case 1: // either side of the antimeridian
			return Point{Lat: rng.Float64()*120 - 60, Lon: (179 + rng.Float64()) * float64(1-2*rng.IntN(2))}
		default:
			return Point{Lat: rng.Float64()*180 - 90, Lon: rng.Float64()*360 - 180}
		}
	}
	infos, fixes := randomUnits(rng, 3000, now0)
	for i := range fixes {
		p := point()
		fixes[i].Fix.Lat, fixes[i].Fix.Lon = p.Lat, p.Lon
	}
	ix := NewIndex()
	loadIndex(t, ix, infos, fixes)
	for i := range infos {
		if i%10 == 0 { // a status change after the fix moves the unit between filters
			infos[i].Status = map[string]string{"available": "busy", "busy": "available"}[infos[i].Status]
			if err := ix.SetUnit(infos[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 400 {
		q := NearestQuery{Point: point(), K: 1 + rng.IntN(20), Now: now0, Statuses: []string{"available"}}
		if i%3 == 0 {
			q.Radius = rng.Float64() * 2e6
		}
		if i%4 == 0 {
			q.Agency = agencies[rng.IntN(2)]
		}
		got, err := ix.Nearest(q)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(got))
		for j, c := range got {
			ids[j] = c.ID
		}
		if want := bruteNearest(infos, fixes, q); !slices.Equal(ids, want) {
			t.Fatalf("query %d %+v:\n got %v\nwant %v", i, q, ids, want)
		}
		if q.Radius > 0 {
			w, err := ix.Within(NearestQuery{Point: q.Point, Radius: q.Radius, Statuses: q.Statuses, Agency: q.Agency, Now: now0})
			if err != nil {
				t.Fatal(err)
			}
			if want := bruteNearest(infos, fixes, NearestQuery{Point: q.Point, Radius: q.Radius, Statuses: q.Statuses, Agency: q.Agency, Now: now0}); len(w) != len(want) {
				t.Fatalf("Within %+v: %d units, brute force %d", q, len(w), len(want))
			}
		}
	}
	// A status no unit has matches nothing; removing a unit takes it out.
	if c, _ := ix.Nearest(NearestQuery{Point: point(), K: 5, Statuses: []string{"no-such-status"}}); len(c) != 0 {
		t.Fatalf("unknown status matched %d units", len(c))
	}
	c, _ := ix.Nearest(NearestQuery{Point: fixes[1].Fix.Point(), K: 1})
	if !ix.RemoveUnit(c[0].ID) {
		t.Fatal("RemoveUnit of a unit with a position")
	}
	if c2, _ := ix.Nearest(NearestQuery{Point: fixes[1].Fix.Point(), K: 1}); c2[0].ID == c[0].ID {
		t.Fatal("removed unit still found")
	}
	// A new unit takes the freed slot and is found where it is.
	if err := ix.SetUnit(UnitInfo{ID: "newcomer", Agency: "police", Kind: "car", Status: "available"}); err != nil {
		t.Fatal(err)
	}
	ix.Update("newcomer", Fix{Lat: c[0].Fix.Lat, Lon: c[0].Fix.Lon, Time: now0})
	if c3, _ := ix.Nearest(NearestQuery{Point: c[0].Fix.Point(), K: 1}); c3[0].ID != "newcomer" {
		t.Fatalf("newcomer not found, got %s", c3[0].ID)
	}
	if u, ok := ix.Unit(c[0].ID); ok {
		t.Fatalf("removed unit still known: %+v", u)
	}
}

// TestNearestByTimeMatchesBruteForce: ranked by straight-line travel time
// over mixed kinds (cars, motorcycles, foot patrols, posts), the index's K
// quickest are the brute-force K quickest, and Recommend ranks them alike.
func TestNearestByTimeMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	infos, fixes := randomUnits(rng, 5000, now0)
	ix := NewIndex()
	loadIndex(t, ix, infos, fixes)
	sl := StraightLine{}
	rec := Recommender{Units: ix}
	for i := range 300 {
		q := NearestQuery{Point: randomPoint(rng), K: 1 + rng.IntN(20), Now: now0, Statuses: []string{"available"}, ByTime: &sl}
		if i%5 == 0 {
			q.MaxAge = 5 * time.Minute
		}
		if i%7 == 0 {
			q.Radius = rng.Float64() * 3000
		}
		ids, secs := bruteRanked(infos, fixes, q, func(d float64, u UnitInfo) float64 { return d * sl.detour() / sl.speed(u.Kind) })
		got, err := ix.Nearest(q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ids) {
			t.Fatalf("query %d: %d units, brute force %d", i, len(got), len(ids))
		}
		for j := range got {
			if got[j].ID != ids[j] {
				t.Fatalf("query %d rank %d: %s, brute force %s (%.1f s)", i, j, got[j].ID, ids[j], secs[j])
			}
		}
		if q.Radius == 0 {
			recs, err := rec.Recommend(context.Background(), RecommendQuery{Point: q.Point, K: q.K, MaxAge: q.MaxAge, Now: now0})
			if err != nil {
				t.Fatal(err)
			}
			for j := range recs {
				if recs[j].UnitID != ids[j] || math.Abs(recs[j].ETA.Seconds-secs[j]) > 1e-6 {
					t.Fatalf("query %d: recommendation %d is %s (%.1f s), brute force %s (%.1f s)", i, j, recs[j].UnitID, recs[j].ETA.Seconds, ids[j], secs[j])
				}
			}
		}
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestBoxALowerBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		lat, lon := rng.Float64()*170-85, rng.Float64()*360-180
		bl, bo := rng.Float64()*170-85, rng.Float64()*340-170
		min := [2]float64{bo, bl}
		max := [2]float64{bo + rng.Float64()*10, bl + rng.Float64()*5}
		lb := boxA(lat, lon, min, max)
		if fast := boxLB(lat, lon, math.Cos(lat*deg), min, max); fast > lb+1e-12 {
			t.Fatalf("fast bound %v above exact %v: q=(%v,%v) box=%v..%v", fast, lb, lat, lon, min, max)
		}
		for range 10 {
			pl := min[1] + rng.Float64()*(max[1]-min[1])
			po := min[0] + rng.Float64()*(max[0]-min[0])
			if a := havA(lat, lon, pl, po); a < lb-1e-12 {
				t.Fatalf("box bound %v above point %v: q=(%v,%v) box=%v..%v p=(%v,%v)", lb, a, lat, lon, min, max, pl, po)
			}
		}
	}
}

func TestOutOfOrderFixes(t *testing.T) {
	tr, err := NewTracker(context.Background(), TrackerConfig{Now: func() time.Time { return now0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx := context.Background()
	if _, err := tr.Update(ctx, "p1", Fix{DeviceID: "d", Lat: 43, Lon: 76, Time: now0}); err == nil {
		t.Fatal("unknown unit accepted")
	}
	_ = tr.SetUnit(ctx, UnitInfo{ID: "p1", Agency: "police", Kind: "car", Status: "available"})
	mk := func(lat float64, at time.Time) Fix {
		return Fix{DeviceID: "d", Lat: lat, Lon: 76.9, Time: at, Speed: Unknown, Heading: Unknown, Accuracy: 5, Battery: Unknown}
	}
	if ok, err := tr.Update(ctx, "p1", mk(43.2, now0.Add(-10*time.Second))); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, _ := tr.Update(ctx, "p1", mk(43.1, now0.Add(-20*time.Second))); ok {
		t.Fatal("older fix applied")
	}
	if ok, err := tr.Update(ctx, "p1", mk(43.3, now0.Add(10*time.Minute))); ok || err == nil {
		t.Fatal("future fix applied")
	}
	if ok, err := tr.Update(ctx, "p1", mk(95, now0)); ok || err == nil {
		t.Fatal("bad latitude applied")
	}
	u, _ := tr.Unit("p1")
	if u.Fix.Lat != 43.2 {
		t.Fatalf("position %v", u.Fix.Lat)
	}
	tr.Update(ctx, "p1", mk(43.21, now0))
	track, _ := tr.Track(ctx, "p1", now0.Add(-time.Hour), now0)
	if len(track) != 2 {
		t.Fatalf("track %v", track)
	}
	gj, _ := TrackGeoJSON("p1", track)
	if !strings.Contains(string(gj), `"type":"LineString","coordinates":[[76.9,43.2],[76.9,43.21]]`) {
		t.Fatalf("geojson %s", gj)
	}
	at, _ := tr.PositionsAt(ctx, now0.Add(-5*time.Second))
	if len(at) != 1 || at[0].Fix.Lat != 43.2 {
		t.Fatalf("PositionsAt %v", at)
	}
}

func TestRingHistoryBounded(t *testing.T) {
	tr, _ := NewTracker(context.Background(), TrackerConfig{HistoryLen: 5, Now: func() time.Time { return now0 }})
	ctx := context.Background()
	_ = tr.SetUnit(ctx, UnitInfo{ID: "p1", Agency: "police"})
	for i := range 12 {
		tr.Update(ctx, "p1", Fix{DeviceID: "d", Lat: 43 + float64(i)/100, Lon: 76, Time: now0.Add(time.Duration(i-20) * time.Second), Speed: Unknown, Heading: Unknown, Accuracy: Unknown, Battery: Unknown})
	}
	track, _ := tr.Track(ctx, "p1", now0.Add(-time.Hour), now0)
	if len(track) != 5 || track[0].Lat != 43.07 || track[4].Lat != 43.11 {
		t.Fatalf("track %+v", track)
	}
}

func TestCameras(t *testing.T) {
	tr, _ := NewTracker(context.Background(), TrackerConfig{})
	ctx := context.Background()
	for i, d := range []float64{0.001, 0.003, 0.002, 0.05} {
		if err := tr.SetCamera(ctx, Camera{ID: fmt.Sprint(i), Lat: almatyLat + d, Lon: almatyLon, Heading: 90, FOV: 60}); err != nil {
			t.Fatal(err)
		}
	}
	hits, err := tr.CamerasNear(Point{almatyLat, almatyLon}, 500, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 3 || hits[0].ID != "0" || hits[1].ID != "2" || hits[2].ID != "1" || abs(hits[0].Distance-111.2) > 1 {
		t.Fatalf("hits %+v", hits)
	}
	if err := tr.SetCamera(ctx, Camera{ID: "x", Lat: 100, Lon: 0}); err == nil {
		t.Fatal("bad camera accepted")
	}
}

// osrmServer answers the Table service like osrm-routed: durations and
// distances rows per source, null where there is no route.
func osrmServer(t *testing.T, status int, reply func(r *http.Request) any) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(reply(r))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestOSRM(t *testing.T) {
	var gotPath, gotQuery string
	srv := osrmServer(t, 200, func(r *http.Request) any {
		gotPath, gotQuery = r.URL.Path, r.URL.RawQuery
		return map[string]any{"code": "Ok",
			"durations": [][]any{{312.4}, {nil}},
			"distances": [][]any{{4021.7}, {nil}},
			"sources":   []any{map[string]any{"hint": "x", "distance": 4.2, "name": "Abay", "location": []float64{76.9, 43.2}}},
		}
	})
	o, err := NewOSRM(OSRMConfig{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	to := Point{43.238, 76.945}
	from := []ETAFrom{{Point{43.22, 76.92}, "car"}, {Point{43.25, 76.99}, "foot"}}
	etas, err := o.ETAs(context.Background(), to, from)
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != "/table/v1/driving/76.945000,43.238000;76.920000,43.220000;76.990000,43.250000" ||
		gotQuery != "sources=1;2&destinations=0&annotations=duration,distance" {
		t.Fatalf("request %s?%s", gotPath, gotQuery)
	}
	if etas[0].Source != "osrm" || etas[0].Seconds != 312.4 || etas[0].Metres != 4021.7 {
		t.Fatalf("eta0 %+v", etas[0])
	}
	if etas[1].Source != "straight_line" || !strings.Contains(etas[1].Fallback, "no route") {
		t.Fatalf("eta1 %+v", etas[1])
	}

	// Error answer and timeout both fall back with the reason.
	bad := osrmServer(t, 400, func(*http.Request) any {
		return map[string]any{"code": "InvalidQuery", "message": "Query string malformed"}
	})
	o, _ = NewOSRM(OSRMConfig{BaseURL: bad.URL})
	etas, _ = o.ETAs(context.Background(), to, from)
	if etas[0].Source != "straight_line" || !strings.Contains(etas[0].Fallback, "InvalidQuery") {
		t.Fatalf("error fallback %+v", etas[0])
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer slow.Close()
	o, _ = NewOSRM(OSRMConfig{BaseURL: slow.URL, Timeout: 50 * time.Millisecond})
	etas, _ = o.ETAs(context.Background(), to, from)
	if etas[0].Source != "straight_line" || !strings.Contains(etas[0].Fallback, "deadline") {
		t.Fatalf("timeout fallback %+v", etas[0])
	}
	// Straight line: 1.4 × distance ÷ speed of kind.
	sl, _ := StraightLine{}.ETAs(context.Background(), to, from)
	d := Distance(from[1].Point, to) * 1.4
	if abs(sl[1].Seconds-d/(5/3.6)) > 1e-6 {
		t.Fatalf("straight line %+v", sl[1])
	}
}

func TestRecommend(t *testing.T) {
	ix := NewIndex()
	p := Point{almatyLat, almatyLon}
	add := func(id, kind, status string, caps []string, dLat float64) {
		_ = ix.SetUnit(UnitInfo{ID: id, Agency: "police", Kind: kind, Status: status, Capabilities: caps})
		ix.Update(id, Fix{Lat: p.Lat + dLat, Lon: p.Lon, Time: now0.Add(-30 * time.Second), Accuracy: 8})
	}
	add("foot-near", "foot", "available", nil, 0.005) // 556 m on foot ≈ 560 s
	add("car-far", "car", "available", nil, 0.02)     // 2.2 km by car ≈ 280 s
	add("car-busy", "car", "busy", nil, 0.001)        // busy: never
	add("car-medic", "car", "available", []string{"medic"}, 0.05)
	r := &Recommender{Units: ix}
	recs, err := r.Recommend(context.Background(), RecommendQuery{Point: p, K: 2, Now: now0})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].UnitID != "car-far" || recs[1].UnitID != "foot-near" || recs[0].ETA.Source != "straight_line" ||
		recs[0].PositionAgeS != 30 || recs[0].Rank != 1 || abs(recs[1].DistanceM-556) > 2 {
		t.Fatalf("recs %+v", recs)
	}
	recs, _ = r.Recommend(context.Background(), RecommendQuery{Point: p, K: 2, RequiredCapabilities: []string{"medic"}, Now: now0})
	if len(recs) != 2 || recs[0].UnitID != "car-medic" || !recs[0].CapabilityOK || recs[1].CapabilityOK || recs[1].MissingCaps[0] != "medic" {
		t.Fatalf("caps %+v", recs)
	}
	// An OSRM that is down: straight-line with the reason.
	o, _ := NewOSRM(OSRMConfig{BaseURL: "http://127.0.0.1:1", Timeout: 100 * time.Millisecond})
	r.ETA = o
	recs, _ = r.Recommend(context.Background(), RecommendQuery{Point: p, K: 1, Now: now0})
	if recs[0].ETA.Fallback == "" || recs[0].ETA.Source != "straight_line" {
		t.Fatalf("fallback %+v", recs[0])
	}
}

func TestFeed(t *testing.T) {
	fd, _ := NewFeed(FeedConfig{QueueLen: 2})
	whole := BBox{MinLon: 76, MinLat: 43, MaxLon: 78, MaxLat: 44}
	a1, _ := fd.Subscribe(FeedFilter{BBox: whole})
	a2, _ := fd.Subscribe(FeedFilter{BBox: whole})
	west, _ := fd.Subscribe(FeedFilter{BBox: BBox{MinLon: 76, MinLat: 43, MaxLon: 76.9, MaxLat: 44}, Statuses: []string{"available"}})
	pub := func(id string, lon float64, st string, sec int) {
		fd.Publish(UnitState{UnitInfo: UnitInfo{ID: id, Agency: "police", Kind: "car", Status: st}, HasFix: true,
			Fix: Fix{Lat: 43.2, Lon: lon, Time: now0.Add(time.Duration(sec) * time.Second)}})
	}
	pub("u1", 76.8, "available", 0)
	pub("u1", 76.85, "available", 1) // coalesced: only the latest goes out
	pub("u2", 76.95, "available", 1)
	pub("u3", 76.7, "busy", 1)
	st := fd.Flush()
	if st.Units != 3 || st.Encodings != 2 || st.Delivered != 3 {
		t.Fatalf("stats %+v", st)
	}
	b1, b2, bw := <-a1.C, <-a2.C, <-west.C
	if &b1[0] != &b2[0] {
		t.Fatal("same filter encoded twice")
	}
	var batch struct {
		Units []feedItem `json:"units"`
	}
	_ = json.Unmarshal(bw, &batch)
	if len(batch.Units) != 1 || batch.Units[0].ID != "u1" || batch.Units[0].Lon != 76.85 {
		t.Fatalf("west batch %s", bw)
	}
	_ = json.Unmarshal(b1, &batch)
	if len(batch.Units) != 3 {
		t.Fatalf("whole batch %s", b1)
	}
	// a2 stops reading: after its queue (2) fills it is dropped, a1 is not.
	for i := range 3 {
		pub("u2", 76.95, "available", 10+i)
		fd.Flush()
		<-a1.C
	}
	select {
	case <-a2.Done():
	default:
		t.Fatal("slow subscriber not dropped")
	}
	if !strings.Contains(fmt.Sprint(a2.Err()), "too slow") || fd.Subscribers() != 2 {
		t.Fatalf("err %v subs %d", a2.Err(), fd.Subscribers())
	}
	west.Unsubscribe()
	a1.Unsubscribe()
	if fd.Subscribers() != 0 {
		t.Fatal("unsubscribe")
	}
}

func TestPointAMatchesHaversine(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for range 100000 {
		lat, lon := rng.Float64()*170-85, rng.Float64()*360-180
		o := newOrigin(Point{lat, lon})
		for _, span := range []float64{0.001, 0.05, 3, 40} {
			pl := math.Max(-90, math.Min(90, lat+(rng.Float64()*2-1)*span))
			po := lon + (rng.Float64()*2-1)*span
			if po > 180 {
				po -= 360
			} else if po < -180 {
				po += 360
			}
			want := havA(lat, lon, pl, po)
			if got := o.pointA(pl, po); math.Abs(got-want) > 1e-15+1e-9*want {
				t.Fatalf("pointA(%v,%v → %v,%v) = %v, haversine %v", lat, lon, pl, po, got, want)
			}
		}
	}
}

// boxA (the exact reference for boxLB) is the haversine term from (lat, lon) to the nearest point of the
// lon/lat rectangle, an exact lower bound for every point inside it, which is
// what R-tree kNN needs to be correct. Outside the rectangle's longitude span
// the nearest point lies on the nearer meridian edge, at the latitude where
// the great circle through the point meets that meridian at a right angle
// (atan(tan φ / cos Δλ)), clamped to the edge.
func boxA(lat, lon float64, min, max [2]float64) float64 {
	// min/max are [lon, lat].
	if lon >= min[0] && lon <= max[0] {
		cl := clamp(lat, min[1], max[1])
		if cl == lat {
			return 0
		}
		s := math.Sin((cl - lat) * deg / 2)
		return s * s
	}
	// Nearer meridian edge, measured around the globe.
	dmin := angDiff(lon, min[0])
	dmax := angDiff(lon, max[0])
	edge, dl := min[0], dmin
	if dmax < dmin {
		edge, dl = max[0], dmax
	}
	var best float64
	if dl < 90 {
		phi := math.Atan(math.Tan(lat*deg)/math.Cos(dl*deg)) / deg
		phi = clamp(phi, min[1], max[1])
		best = havA(lat, lon, phi, edge)
	} else {
		best = math.Min(havA(lat, lon, min[1], edge), havA(lat, lon, max[1], edge))
	}
	return best
}

// Readers query while a writer moves units: under -race this checks the
// locking; every answer must be sorted and complete.
func TestIndexConcurrentReadWrite(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	infos, fixes := randomUnits(rng, 2000, now0)
	ix := NewIndex()
	loadIndex(t, ix, infos, fixes)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		wrng := rand.New(rand.NewPCG(23, 24))
		batch := make([]UnitFix, 100)
		for step := 1; ; step++ {
			select {
			case <-stop:
				return
			default:
			}
			for i := range batch {
				id := infos[wrng.IntN(len(infos))].ID
				batch[i] = UnitFix{UnitID: id, Fix: randomFix(wrng, id, now0.Add(time.Duration(step)*time.Millisecond))}
			}
			ix.UpdateBatch(batch, nil)
			if step%10 == 0 {
				u := infos[wrng.IntN(len(infos))]
				u.Status = []string{"available", "busy"}[step%20/10]
				_ = ix.SetUnit(u)
			}
		}
	}()
	for range 2000 {
		c, err := ix.Nearest(NearestQuery{Point: randomPoint(rng), K: 10, Statuses: []string{"available"}})
		if err != nil || len(c) != 10 {
			t.Fatalf("%d candidates, %v", len(c), err)
		}
		for i := 1; i < len(c); i++ {
			if c[i].Distance < c[i-1].Distance || c[i].Status != "available" {
				t.Fatalf("bad answer %+v", c)
			}
		}
	}
	close(stop)
	<-done
	if ix.Len() != 2000 || ix.tr.Len() != 2000 {
		t.Fatalf("units %d, tree %d", ix.Len(), ix.tr.Len())
	}
}
