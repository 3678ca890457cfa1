package gis

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kuzet/kuzet/internal/loadgen"
)

// Benchmarks. Run them explicitly, e.g.
//
//	go test -run '^$' -bench . -benchtime 2s ./gis/
//
// Latency benchmarks drive the operation from 8 concurrent clients and
// report p50/p99 in µs and queries/s besides ns/op.

const clients = 8

// drive runs op b.N times from n goroutines and reports latency percentiles
// and throughput.
func drive(b *testing.B, n int, op func(i int) error) {
	b.Helper()
	var next atomic.Int64
	lats := make([][]time.Duration, n)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	cpu0 := loadgen.ProcessCPU()
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := op(int(i)); err != nil {
					b.Error(err)
					return
				}
				lats[c] = append(lats[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	cpu := loadgen.ProcessCPU() - cpu0
	b.StopTimer()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(pct(0.5), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(len(all))/el.Seconds(), "q/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(len(all)), "cpu-µs/op")
}

// redisForks is the number of forks (AOF rewrites here) the server made.
func redisForks(b *testing.B, rdb *redis.Client) int {
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_forks:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// redisCPU is the redis-server's CPU time, read from /proc.
func redisCPU(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sys, user float64
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_cpu_sys:"); ok {
			sys, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, "used_cpu_user:"); ok {
			user, _ = strconv.ParseFloat(v, 64)
		}
	}
	return time.Duration((sys + user) * 1e9)
}

type nearestFixture struct {
	tr      *Tracker // Redis-backed: its in-process index is what "ours" queries
	rdb     *redis.Client
	queries []Point
}

var benchNow = time.Now().Truncate(time.Second)

func setupNearest(b *testing.B, n int) *nearestFixture {
	b.Helper()
	ctx := context.Background()
	rdb := newRedis(b)
	tr, err := NewTracker(ctx, TrackerConfig{Redis: rdb})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close() })
	rng := rand.New(rand.NewPCG(11, uint64(n)))
	infos, fixes := randomUnits(rng, n, benchNow)
	for _, u := range infos {
		if err := tr.ix.SetUnit(u); err != nil {
			b.Fatal(err)
		}
	}
	// Unit info into Redis in one pipeline (SetUnit one by one is slow to set up).
	pipe := rdb.Pipeline()
	for _, u := range infos {
		js, _ := json.Marshal(u)
		pipe.HSet(ctx, keyUnitInfo, u.ID, js)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	if got, err := tr.UpdateBatch(ctx, fixes); err != nil || got != n {
		b.Fatalf("load %d: %v", got, err)
	}
	f := &nearestFixture{tr: tr, rdb: rdb}
	for range 4096 {
		f.queries = append(f.queries, randomPoint(rng))
	}
	return f
}

var availQuery = NearestQuery{K: 10, Statuses: []string{"available"}}

// BenchmarkNearestAvailable: k=10 nearest available units, a third busy,
// units uniform in a 40 × 40 km box around Almaty; our index next to Redis
// GEOSEARCH on the available-only key and on all units with client-side
// status filtering, on the same data in the same run.
func BenchmarkNearestAvailable(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		f := setupNearest(b, n)
		ctx := context.Background()
		b.Run(fmt.Sprintf("units=%d/ours", n), func(b *testing.B) {
			drive(b, clients, func(i int) error {
				q := availQuery
				q.Point = f.queries[i%len(f.queries)]
				c, err := f.tr.Nearest(q)
				if err == nil && len(c) != 10 {
					err = fmt.Errorf("got %d", len(c))
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("units=%d/ours-http-loopback", n), func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				lat, _ := strconv.ParseFloat(r.URL.Query().Get("lat"), 64)
				lon, _ := strconv.ParseFloat(r.URL.Query().Get("lon"), 64)
				q := availQuery
				q.Point = Point{lat, lon}
				c, err := f.tr.Nearest(q)
				if err != nil {
					http.Error(w, err.Error(), 400)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(c)
			}))
			defer srv.Close()
			cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
			drive(b, clients, func(i int) error {
				p := f.queries[i%len(f.queries)]
				resp, err := cl.Get(srv.URL + "/nearest?lat=" + url.QueryEscape(fmt.Sprint(p.Lat)) + "&lon=" + fmt.Sprint(p.Lon))
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return nil
			})
		})
		b.Run(fmt.Sprintf("units=%d/redis-geosearch-available-key", n), func(b *testing.B) {
			r0 := redisCPU(b, f.rdb)
			defer func() {
				b.ReportMetric(float64((redisCPU(b, f.rdb)-r0).Nanoseconds())/1e3/float64(b.N), "redis-cpu-µs/op")
			}()
			drive(b, clients, func(i int) error {
				p := f.queries[i%len(f.queries)]
				res, err := f.rdb.GeoSearch(ctx, keyAvailable, &redis.GeoSearchQuery{Longitude: p.Lon, Latitude: p.Lat,
					Radius: 60000, RadiusUnit: "m", Sort: "ASC", Count: 10}).Result()
				if err == nil && len(res) != 10 {
					err = fmt.Errorf("got %d", len(res))
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("units=%d/redis-geosearch-all-filter-client", n), func(b *testing.B) {
			r0 := redisCPU(b, f.rdb)
			defer func() {
				b.ReportMetric(float64((redisCPU(b, f.rdb)-r0).Nanoseconds())/1e3/float64(b.N), "redis-cpu-µs/op")
			}()
			drive(b, clients, func(i int) error {
				p := f.queries[i%len(f.queries)]
				return redisNearestFiltered(ctx, f.rdb, p, 10)
			})
		})
	}
}

// redisNearestFiltered is the Redis-only way without an available-only key:
// GEOSEARCH every agency key for 3k candidates, read their attributes with
// HMGET, keep the available ones; widen if fewer than k.
func redisNearestFiltered(ctx context.Context, rdb *redis.Client, p Point, k int) error {
	for count := 3 * k; ; count *= 2 {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.GeoSearchLocationCmd, len(agencies))
		for i, a := range agencies {
			cmds[i] = pipe.GeoSearchLocation(ctx, keyUnitsPrefix+a, &redis.GeoSearchLocationQuery{
				GeoSearchQuery: redis.GeoSearchQuery{Longitude: p.Lon, Latitude: p.Lat, Radius: 60000, RadiusUnit: "m", Sort: "ASC", Count: count},
				WithDist:       true})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		var locs []redis.GeoLocation
		for _, c := range cmds {
			locs = append(locs, c.Val()...)
		}
		slices.SortFunc(locs, func(a, b redis.GeoLocation) int {
			switch {
			case a.Dist < b.Dist:
				return -1
			case a.Dist > b.Dist:
				return 1
			}
			return 0
		})
		ids := make([]string, len(locs))
		for i := range locs {
			ids[i] = locs[i].Name
		}
		vals, err := rdb.HMGet(ctx, keyUnitInfo, ids...).Result()
		if err != nil {
			return err
		}
		got := 0
		for _, v := range vals {
			var u UnitInfo
			if s, ok := v.(string); ok && json.Unmarshal([]byte(s), &u) == nil && u.Status == "available" {
				got++
				if got == k {
					return nil
				}
			}
		}
		if len(locs) < count {
			return fmt.Errorf("only %d available units", got)
		}
	}
}

// BenchmarkNearestUnderIngest: the same query on 100,000 units while one
// writer applies fixes in 100-fix batches: paced at 50,000 fixes/s (the
// Redis ingest target, 5× a city's 10,000 units at 1 Hz), and flat out.
func BenchmarkNearestUnderIngest(b *testing.B) {
	ix := NewIndex()
	rng := rand.New(rand.NewPCG(5, 6))
	infos, fixes := randomUnits(rng, 100_000, benchNow)
	loadIndex(b, ix, infos, fixes)
	var queries []Point
	for range 4096 {
		queries = append(queries, randomPoint(rng))
	}
	for _, rate := range []int{0, 50_000, -1} { // 0: no writer, -1: flat out
		name := map[int]string{0: "writer=none", 50_000: "writer=50k-fixes-per-s", -1: "writer=flat-out"}[rate]
		b.Run(name, func(b *testing.B) {
			stop := make(chan struct{})
			var written atomic.Int64
			var wg sync.WaitGroup
			if rate != 0 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					wrng := rand.New(rand.NewPCG(9, 9))
					batch := make([]UnitFix, 100)
					applied := make([]bool, 0, 100)
					t := benchNow
					began := time.Now()
					for {
						select {
						case <-stop:
							return
						default:
						}
						// Pace by elapsed time (a ticker would drop ticks while
						// eight readers keep both cores busy).
						if rate > 0 && written.Load() >= int64(time.Since(began).Seconds()*float64(rate)) {
							time.Sleep(200 * time.Microsecond)
							continue
						}
						t = t.Add(time.Millisecond)
						for i := range batch {
							id := infos[wrng.IntN(len(infos))].ID
							batch[i] = UnitFix{UnitID: id, Fix: randomFix(wrng, id, t)}
						}
						applied = ix.UpdateBatch(batch, applied)
						written.Add(int64(len(batch)))
					}
				}()
			}
			start := time.Now()
			drive(b, clients, func(i int) error {
				q := availQuery
				q.Point = queries[i%len(queries)]
				_, err := ix.Nearest(q)
				return err
			})
			close(stop)
			wg.Wait()
			if rate != 0 {
				b.ReportMetric(float64(written.Load())/time.Since(start).Seconds(), "fixes/s-written")
			}
		})
	}
}

// BenchmarkIngest: fixes/s through Tracker.UpdateBatch (1,000-fix batches,
// 100,000 units), embedded and with Redis; next to the peer figure of raw
// pipelined GEOADD on the same server.
func BenchmarkIngest(b *testing.B) {
	const units = 100_000
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 1))
	infos, _ := randomUnits(rng, units, benchNow)
	run := func(b *testing.B, tr *Tracker) {
		for _, u := range infos {
			if err := tr.ix.SetUnit(u); err != nil {
				b.Fatal(err)
			}
		}
		batch := make([]UnitFix, 1000)
		t := benchNow.Add(-time.Hour)
		// Warm-up pass, not timed: every unit gets its first fix (and, with
		// Redis, its history stream is created), as on a server that has
		// been running; creation costs ≈ 2× a steady-state fix.
		for done := 0; done < units; done += len(batch) {
			t = t.Add(time.Millisecond)
			for i := range batch {
				id := infos[done+i].ID
				batch[i] = UnitFix{UnitID: id, Fix: randomFix(rng, id, t)}
			}
			if _, err := tr.UpdateBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		var r0 time.Duration
		var forks0 int
		if tr.rdb != nil {
			r0 = redisCPU(b, tr.rdb)
			forks0 = redisForks(b, tr.rdb)
		}
		b.ResetTimer()
		start := time.Now()
		c0 := loadgen.ProcessCPU()
		defer func() {
			b.ReportMetric(float64((loadgen.ProcessCPU()-c0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/fix")
			if tr.rdb != nil {
				b.ReportMetric(float64((redisCPU(b, tr.rdb)-r0).Nanoseconds())/1e3/float64(b.N), "redis-cpu-µs/fix")
				// An AOF rewrite (a fork copying the dataset) during the run
				// competes for the same 2 cores; say so beside the figure.
				b.ReportMetric(float64(redisForks(b, tr.rdb)-forks0), "aof-rewrites")
			}
		}()
		for done := 0; done < b.N; done += len(batch) {
			t = t.Add(time.Millisecond)
			for i := range batch {
				id := infos[(done+i)%units].ID
				batch[i] = UnitFix{UnitID: id, Fix: randomFix(rng, id, t)}
			}
			if _, err := tr.UpdateBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "fixes/s")
	}
	b.Run("embedded-batch", func(b *testing.B) {
		tr, _ := NewTracker(ctx, TrackerConfig{HistoryLen: 100})
		run(b, tr)
	})
	b.Run("embedded-single", func(b *testing.B) {
		tr, _ := NewTracker(ctx, TrackerConfig{HistoryLen: 100})
		for _, u := range infos {
			_ = tr.ix.SetUnit(u)
		}
		t := benchNow.Add(-time.Hour)
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			id := infos[i%units].ID
			if i%units == 0 {
				t = t.Add(time.Second)
			}
			if _, err := tr.Update(ctx, id, randomFix(rng, id, t)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "fixes/s")
	})
	rdb := newRedis(b)
	b.Run("redis-batch", func(b *testing.B) {
		tr, err := NewTracker(ctx, TrackerConfig{Redis: rdb, HistoryLen: 100})
		if err != nil {
			b.Fatal(err)
		}
		defer tr.Close()
		run(b, tr)
	})
	// Positions are durability class B (latest wins): a Redis that holds
	// only positions can run without AOF (the test server runs appendonly
	// with appendfsync always, as the journal needs, and rewrites the AOF
	// during long runs).
	b.Run("redis-batch-positions-redis-no-aof", func(b *testing.B) {
		if err := rdb.ConfigSet(ctx, "appendonly", "no").Err(); err != nil {
			b.Fatal(err)
		}
		defer rdb.ConfigSet(ctx, "appendonly", "yes")
		rdb.FlushAll(ctx)
		tr, err := NewTracker(ctx, TrackerConfig{Redis: rdb, HistoryLen: 100})
		if err != nil {
			b.Fatal(err)
		}
		defer tr.Close()
		run(b, tr)
	})
	b.Run("peer-redis-geoadd-pipelined", func(b *testing.B) {
		r0 := redisCPU(b, rdb)
		defer func() {
			b.ReportMetric(float64((redisCPU(b, rdb)-r0).Nanoseconds())/1e3/float64(b.N), "redis-cpu-µs/fix")
		}()
		b.ResetTimer()
		start := time.Now()
		for done := 0; done < b.N; done += 1000 {
			pipe := rdb.Pipeline()
			for i := range 1000 {
				p := randomPoint(rng)
				pipe.GeoAdd(ctx, "bench:geoadd", &redis.GeoLocation{Name: infos[(done+i)%units].ID, Longitude: p.Lon, Latitude: p.Lat})
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "fixes/s")
	})
}

// BenchmarkSectorLookup: point → sector with 400 sectors of 200 vertices.
func BenchmarkSectorLookup(b *testing.B) {
	si := NewSectorIndex()
	if n, err := si.Load(gridSectors(20, 50)); err != nil || n != 400 {
		b.Fatal(n, err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	pts := make([]Point, 4096)
	for i := range pts {
		pts[i] = randomPoint(rng)
	}
	b.ResetTimer()
	found := 0
	for i := range b.N {
		if _, ok := si.Lookup(pts[i%len(pts)]); ok {
			found++
		}
	}
	if b.N > 100 && found < b.N*9/10 {
		b.Fatalf("only %d of %d points found a sector", found, b.N)
	}
}

// BenchmarkFeed: 10,000 units at 1 Hz (2,500 changes per 250 ms flush)
// fanned out to 1,000 subscribers over 100 distinct viewports (or 1,000
// distinct); one op is one flush. cpu-% is the share of one core the
// flushes take at 4 per second.
func BenchmarkFeed(b *testing.B) {
	for _, distinct := range []int{100, 1000} {
		b.Run(fmt.Sprintf("subs=1000/viewports=%d", distinct), func(b *testing.B) {
			fd, _ := NewFeed(FeedConfig{QueueLen: 4})
			rng := rand.New(rand.NewPCG(3, 3))
			var subs []*Subscription
			for i := range 1000 {
				c := randomPoint(rand.New(rand.NewPCG(4, uint64(i%distinct))))
				bb := BBox{MinLon: c.Lon - 0.05, MinLat: c.Lat - 0.04, MaxLon: c.Lon + 0.05, MaxLat: c.Lat + 0.04}
				s, err := fd.Subscribe(FeedFilter{BBox: bb})
				if err != nil {
					b.Fatal(err)
				}
				subs = append(subs, s)
			}
			states := make([]UnitState, 10_000)
			for i := range states {
				p := randomPoint(rng)
				states[i] = UnitState{UnitInfo: UnitInfo{ID: fmt.Sprintf("u%05d", i), Agency: "police", Kind: "car", Status: "available"},
					HasFix: true, Fix: Fix{Lat: p.Lat, Lon: p.Lon, Time: benchNow, Speed: 8, Heading: 90}}
			}
			var flushes []time.Duration
			b.ResetTimer()
			for i := range b.N {
				for j := range 2500 {
					u := states[(i*2500+j)%len(states)]
					u.Fix.Time = u.Fix.Time.Add(time.Duration(i) * time.Second)
					fd.Publish(u)
				}
				t0 := time.Now()
				st := fd.Flush()
				flushes = append(flushes, time.Since(t0))
				if st.Dropped > 0 {
					b.Fatalf("dropped %d", st.Dropped)
				}
				b.StopTimer()
				for _, s := range subs {
					for len(s.C) > 0 {
						<-s.C
					}
				}
				b.StartTimer()
			}
			b.StopTimer()
			slices.Sort(flushes)
			p99 := flushes[int(0.99*float64(len(flushes)-1))]
			b.ReportMetric(float64(p99.Microseconds())/1e3, "flush-p99-ms")
			var sum time.Duration
			for _, d := range flushes {
				sum += d
			}
			b.ReportMetric(100*4*(sum/time.Duration(len(flushes))).Seconds(), "cpu-%")
		})
	}
}

// BenchmarkNearestSingle: one client, 100,000 units, CPU per query.
func BenchmarkNearestSingle(b *testing.B) {
	ix := NewIndex()
	rng := rand.New(rand.NewPCG(5, 6))
	infos, fixes := randomUnits(rng, 100_000, benchNow)
	loadIndex(b, ix, infos, fixes)
	var queries []Point
	for range 4096 {
		queries = append(queries, randomPoint(rng))
	}
	b.ResetTimer()
	cpu0 := loadgen.ProcessCPU()
	defer func() {
		b.ReportMetric(float64((loadgen.ProcessCPU()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
	}()
	for i := range b.N {
		q := availQuery
		q.Point = queries[i%len(queries)]
		if _, err := ix.Nearest(q); err != nil {
			b.Fatal(err)
		}
	}
}
