package gis

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func newRedis(t testing.TB) *redis.Client {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 16})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// The in-process index and Redis GEOSEARCH agree on which units are within
// a radius. Redis stores 52-bit geohashes (≈0.6 m) and uses a slightly
// different Earth radius (6372797.56 m vs 6371008.8 m, 0.03 %), so units
// within 1 m + 0.04 % of the radius of the boundary may differ.
func TestWithinAgreesWithRedis(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	tr, err := NewTracker(ctx, TrackerConfig{Redis: rdb, Now: func() time.Time { return now0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	rng := rand.New(rand.NewPCG(7, 8))
	infos, fixes := randomUnits(rng, 3000, now0)
	for _, u := range infos {
		if err := tr.SetUnit(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := tr.UpdateBatch(ctx, fixes); err != nil || n != len(fixes) {
		t.Fatalf("UpdateBatch %d %v", n, err)
	}
	for i := range 200 {
		p := randomPoint(rng)
		r := 100 + rng.Float64()*8000
		agency := agencies[i%2]
		avail := i%3 == 0
		q := NearestQuery{Point: p, Radius: r, Agency: agency}
		key := keyUnitsPrefix + agency
		if avail {
			q.Statuses = []string{"available"}
			q.Agency = ""
			key = keyAvailable
		}
		ours, err := tr.Within(q)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := rdb.GeoSearch(ctx, key, &redis.GeoSearchQuery{Longitude: p.Lon, Latitude: p.Lat, Radius: r, RadiusUnit: "m"}).Result()
		if err != nil {
			t.Fatal(err)
		}
		in := map[string]bool{}
		for _, c := range ours {
			in[c.ID] = true
		}
		inRedis := map[string]bool{}
		for _, id := range theirs {
			inRedis[id] = true
		}
		tol := 1 + r*4e-4
		check := func(id string) {
			if in[id] == inRedis[id] {
				return
			}
			u, _ := tr.Unit(id)
			if d := Distance(p, u.Fix.Point()); abs(d-r) > tol {
				t.Fatalf("query %d: unit %s at %.2f m from the point, radius %.2f: index %v, Redis %v", i, id, d, r, in[id], inRedis[id])
			}
		}
		for id := range in {
			check(id)
		}
		for id := range inRedis {
			check(id)
		}
		if len(ours) == 0 && len(theirs) == 0 && i < 5 {
			t.Logf("query %d empty", i)
		}
	}
}

func TestTrackerRedisNodesFollowEachOther(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rdb := newRedis(t)
	clock := func() time.Time { return now0 }
	a, err := NewTracker(ctx, TrackerConfig{Redis: rdb, NodeID: "a", Now: clock, HistoryLen: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	seen := make(chan UnitState, 16)
	b, err := NewTracker(ctx, TrackerConfig{Redis: rdb, NodeID: "b", Now: clock, OnUpdate: func(u UnitState) { seen <- u }})
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- b.Run(ctx) }()
	defer func() {
		// Close ends Run: no goroutine outlives the test.
		b.Close()
		select {
		case err := <-runDone:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after Close")
		}
	}()

	if err := a.SetUnit(ctx, UnitInfo{ID: "p1", Agency: "police", Kind: "car", Status: "available", Capabilities: []string{"medic"}}); err != nil {
		t.Fatal(err)
	}
	mk := func(lat float64, sec int) Fix {
		return Fix{DeviceID: "d1", Lat: lat, Lon: 76.9, Time: now0.Add(time.Duration(sec) * time.Second), Speed: 3, Heading: 10, Accuracy: 5, Battery: 50}
	}
	for i := range 10 {
		if ok, err := a.Update(ctx, "p1", mk(43.2+float64(i)/1000, i-60)); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	var last UnitState
	for !near(last.Fix.Lat, 43.209) {
		select {
		case last = <-seen:
		case <-ctx.Done():
			t.Fatal("node b never saw the fixes")
		}
	}
	if last.Agency != "police" || last.Capabilities[0] != "medic" {
		t.Fatalf("node b state %+v", last)
	}
	// An older fix, even through another node, changes nothing.
	if ok, err := b.Update(ctx, "p1", mk(44, -100)); ok || err != nil {
		t.Fatal("older fix applied via node b", err)
	}
	// History in the capped stream.
	track, err := b.Track(ctx, "p1", now0.Add(-55*time.Second), now0)
	if err != nil || len(track) != 5 || !near(track[0].Lat, 43.205) {
		t.Fatalf("track %v %v", track, err)
	}
	at, err := a.PositionsAt(ctx, now0.Add(-57*time.Second))
	if err != nil || len(at) != 1 || !near(at[0].Fix.Lat, 43.203) {
		t.Fatalf("PositionsAt %v %v", at, err)
	}
	// Status change: out of the available-only key.
	if err := a.SetUnit(ctx, UnitInfo{ID: "p1", Agency: "police", Kind: "car", Status: "busy"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.ZCard(ctx, keyAvailable).Result(); n != 0 {
		t.Fatalf("available key holds %d", n)
	}
	if err := a.SetCamera(ctx, Camera{ID: "c1", Lat: 43.2, Lon: 76.9, Heading: Unknown}); err != nil {
		t.Fatal(err)
	}
	// A node started later loads the picture from Redis.
	c, err := NewTracker(ctx, TrackerConfig{Redis: rdb, NodeID: "c", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u, ok := c.Unit("p1")
	if !ok || u.Status != "busy" || !near(u.Fix.Lat, 43.209) || c.Cameras().Len() != 1 {
		t.Fatalf("loaded %+v %v cams %d", u, ok, c.Cameras().Len())
	}
	// Bad input stores nothing.
	if _, err := a.Update(ctx, "p2", mk(43, 0)); err == nil {
		t.Fatal("unknown unit accepted")
	}
	if n, _ := rdb.Exists(ctx, keyHistPrefix+"p2").Result(); n != 0 {
		t.Fatal("history stored for an unknown unit")
	}
	if err := a.RemoveUnit(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, keyHistPrefix+"p1").Result(); n != 0 {
		t.Fatal("history kept after removal")
	}
}
