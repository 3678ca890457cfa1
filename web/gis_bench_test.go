package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/dispatch/journal/filejournal"
	"github.com/kuzet/kuzet/gis"
	"github.com/kuzet/kuzet/internal/auth"
	"github.com/kuzet/kuzet/internal/loadgen"
	"github.com/kuzet/kuzet/internal/redistest"
)

// End-to-end tracking benchmarks through the real web handler on loopback
// (httptest), with the clients in the same process on the same 2 cores.
// Run them explicitly:
//
//	go test -run '^$' -bench 'GIS' -benchtime 20000x ./web/
//
// Data: units uniform in a 40 × 40 km box around Almaty, a third busy.

const benchClients = 8

// benchPacedRates are the offered rates of the paced nearest runs
// (BENCH_PACED_RATES=10000,12500 to try others).
var benchPacedRates = func() []int {
	rates := []int{15_000}
	if v := os.Getenv("BENCH_PACED_RATES"); v != "" {
		rates = rates[:0]
		for _, f := range strings.Split(v, ",") {
			if r, err := strconv.Atoi(f); err == nil && r > 0 {
				rates = append(rates, r)
			}
		}
	}
	return rates
}()

// benchFeedInterval is the map feed's coalescing period (0 = default 250 ms).
var benchFeedInterval time.Duration

type gisBench struct {
	srv     *Server
	svc     *dispatch.Service
	tr      *gis.Tracker
	feed    *gis.Feed
	store   *auth.FileStore
	authn   *auth.Authenticator
	http    *httptest.Server
	client  *http.Client
	rdb     *redis.Client // nil embedded
	tokens  map[auth.Role]string
	incs    []string
	queries []gis.Point
}

func randPoint(rng *rand.Rand) gis.Point {
	// 40 km ≈ 0.36° of latitude and 0.49° of longitude at 43.24 N.
	return gis.Point{Lat: almatyLat - 0.18 + rng.Float64()*0.36, Lon: almatyLon - 0.247 + rng.Float64()*0.494}
}

func newGISBench(b *testing.B, withRedis bool, units int) *gisBench {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	j, err := filejournal.Open(filejournal.Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := dispatch.New(dispatch.Config{Journal: j, TimerInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	store, err := auth.OpenFileStore(dir)
	if err != nil {
		b.Fatal(err)
	}
	authn, _ := auth.New(auth.Config{Store: store})
	feed, _ := gis.NewFeed(gis.FeedConfig{Interval: benchFeedInterval})
	g := &gisBench{svc: svc, feed: feed, store: store, authn: authn, tokens: map[auth.Role]string{}}
	tc := gis.TrackerConfig{OnUpdate: feed.Publish}
	if withRedis {
		rs := redistest.Start(b)
		g.rdb = redis.NewClient(&redis.Options{Addr: rs.Addr, PoolSize: 64})
		b.Cleanup(func() { g.rdb.Close() })
		tc.Redis = g.rdb
	}
	if g.tr, err = gis.NewTracker(ctx, tc); err != nil {
		b.Fatal(err)
	}
	trCtx, stopTr := context.WithCancel(ctx)
	go g.tr.Run(trCtx)
	if g.srv, err = New(Config{Dispatch: svc, Auth: authn, Tracker: g.tr, GIS: GISConfig{Feed: feed}}); err != nil {
		b.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	g.http = httptest.NewServer(g.srv.Handler())
	g.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
	b.Cleanup(func() {
		g.http.Close()
		g.srv.Drain(context.Background())
		stopTr()
		g.tr.Close()
		svc.Close()
		j.Close()
	})
	for _, role := range []auth.Role{auth.RoleDispatcher, auth.RoleGateway, auth.RoleViewer} {
		name := string(role) + "1"
		if err := store.PutUser(ctx, auth.User{Username: name, Role: role, PasswordHash: "x", CreatedAt: time.Now()}, true); err != nil {
			b.Fatal(err)
		}
		tok, hash := auth.NewToken()
		if err := store.PutSession(ctx, auth.Session{TokenHash: hash, Username: name, Expires: time.Now().Add(24 * time.Hour)}); err != nil {
			b.Fatal(err)
		}
		g.tokens[role] = tok
	}
	rng := rand.New(rand.NewPCG(7, uint64(units)))
	now := time.Now()
	batch := make([]gis.UnitFix, 0, 1000)
	for i := range units {
		status := "available"
		if i%3 == 0 {
			status = "dispatched"
		}
		// Straight into the index (registering 100,000 units one by one
		// through Redis would take minutes); fixes go through the tracker.
		if err := g.tr.Index().SetUnit(gis.UnitInfo{ID: benchUnit(i), Agency: "police", Kind: "car", Status: status}); err != nil {
			b.Fatal(err)
		}
		p := randPoint(rng)
		batch = append(batch, gis.UnitFix{UnitID: benchUnit(i), Fix: gis.Fix{DeviceID: "b", Lat: p.Lat, Lon: p.Lon,
			Time: now.Add(-time.Duration(rng.IntN(600)) * time.Second), Speed: -1, Heading: -1, Accuracy: 10, Battery: -1}})
		if len(batch) == cap(batch) || i == units-1 {
			if _, err := g.tr.UpdateBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if withRedis {
		// Unit attributes for the client-side filter of the peer query.
		pipe := g.rdb.Pipeline()
		for i := range units {
			st := "available"
			if i%3 == 0 {
				st = "dispatched"
			}
			js, _ := json.Marshal(gis.UnitInfo{ID: benchUnit(i), Agency: "police", Kind: "car", Status: st})
			pipe.HSet(ctx, "kuzet:gis:unitinfo", benchUnit(i), js)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	settle(b)
	for range 64 {
		p := randPoint(rng)
		in, err := svc.CreateIncident(ctx, sup, dispatch.NewIncident{Type: "THEFT", Location: dispatch.Location{Lat: p.Lat, Lon: p.Lon}})
		if err != nil {
			b.Fatal(err)
		}
		g.incs = append(g.incs, in.ID)
		g.queries = append(g.queries, p)
	}
	return g
}

func benchUnit(i int) string { return fmt.Sprintf("U%06d", i) }

func (g *gisBench) get(path, token string) error {
	req, _ := http.NewRequest("GET", g.http.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d", path, resp.StatusCode)
	}
	return nil
}

// BenchmarkGISNearestHTTP: nearest available k=10 through GET
// /api/v1/incidents/{id}/recommendations?k=10 (auth, the incident's
// location, the index ranking by travel time, reasons, JSON), 8 clients,
// next to Redis GEOSEARCH on the same units in the same run and to a bare
// net/http handler answering a fixed body (the floor). Our endpoint is driven
// three ways: by Go's net/http client; by loadgen.RawConn (one keep-alive
// HTTP/1.1 connection per client, prebuilt requests, like wrk), closed loop,
// for the most queries/s; and by loadgen.RawConn paced at 15,000 queries/s
// offered (TARGETS.md's rate), for the latency at that rate.
func BenchmarkGISNearestHTTP(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		g := newGISBench(b, true, n)
		// The map feed runs as in the server (it holds the units' pending
		// positions until its first flush).
		feedCtx, stopFeed := context.WithCancel(context.Background())
		go g.feed.Run(feedCtx)
		b.Cleanup(stopFeed)
		tok := g.tokens[auth.RoleDispatcher]
		ctx := context.Background()
		path := func(i int) string { return "/api/v1/incidents/" + g.incs[i%len(g.incs)] + "/recommendations?k=10" }
		g.checkRecommendations(b, path(0), tok)
		b.Run(fmt.Sprintf("units=%d/ours-http-netclient", n), func(b *testing.B) {
			drive(b, benchClients, b.N, 0, "q", func(_, i int) error { return g.get(path(i), tok) })
		})
		b.Run(fmt.Sprintf("units=%d/ours-http-raw", n), func(b *testing.B) {
			cs := g.rawClients(b, benchClients, tok)
			drive(b, benchClients, b.N, 0, "q", func(c, i int) error { return cs[c].Get(path(i)) })
		})
		for _, rate := range benchPacedRates {
			b.Run(fmt.Sprintf("units=%d/ours-http-raw-paced-%d", n, rate), func(b *testing.B) {
				cs := g.rawClients(b, benchClients, tok)
				drive(b, benchClients, b.N, float64(rate), "q", func(c, i int) error { return cs[c].Get(path(i)) })
			})
		}
		paths := make([]string, len(g.incs))
		for i := range paths {
			paths[i] = path(i)
		}
		job := loadgenJob{Addr: g.http.Listener.Addr().String(), Token: tok, Paths: paths, Clients: benchClients}
		b.Run(fmt.Sprintf("units=%d/ours-http-raw-process", n), func(b *testing.B) {
			job.Total, job.Rate = b.N, 0
			loadFromProcess(b, job, "q")
		})
		for _, rate := range benchPacedRates {
			b.Run(fmt.Sprintf("units=%d/ours-http-raw-process-paced-%d", n, rate), func(b *testing.B) {
				job.Total, job.Rate = b.N, float64(rate)
				loadFromProcess(b, job, "q")
			})
		}
		if n == 100_000 {
			c := g.rawClients(b, 1, tok)[0]
			if err := c.Get(path(0)); err != nil {
				b.Fatal(err)
			}
			benchHTTPFloor(b, g, len(c.Body()))
		}
		// Redis answers 40-1,500 queries/s here: fewer of them.
		redisN := func(b *testing.B) int { return max(1, min(b.N, 2_000_000/n)) }
		b.Run(fmt.Sprintf("units=%d/redis-geosearch-available", n), func(b *testing.B) {
			drive(b, benchClients, redisN(b), 0, "q", func(_, i int) error {
				p := g.queries[i%len(g.queries)]
				res, err := g.rdb.GeoSearch(ctx, "kuzet:gis:units-available", &redis.GeoSearchQuery{
					Longitude: p.Lon, Latitude: p.Lat, Radius: 60, RadiusUnit: "km", Sort: "ASC", Count: 10}).Result()
				if err == nil && len(res) != 10 {
					err = fmt.Errorf("got %d", len(res))
				}
				return err
			})
		})
		// The best use of GEOSEARCH: a radius that grows from 500 m until
		// ten are found (a wide radius makes Redis sort every member in it).
		b.Run(fmt.Sprintf("units=%d/redis-geosearch-available-growing-radius", n), func(b *testing.B) {
			drive(b, benchClients, b.N/10, 0, "q", func(_, i int) error {
				p := g.queries[i%len(g.queries)]
				for r := 500.0; ; r *= 2 {
					res, err := g.rdb.GeoSearch(ctx, "kuzet:gis:units-available", &redis.GeoSearchQuery{
						Longitude: p.Lon, Latitude: p.Lat, Radius: r, RadiusUnit: "m", Sort: "ASC", Count: 10}).Result()
					if err != nil || len(res) == 10 {
						return err
					}
					if r > 100e3 {
						return fmt.Errorf("only %d available units within 100 km", len(res))
					}
				}
			})
		})
		b.Run(fmt.Sprintf("units=%d/redis-geosearch-all-filter", n), func(b *testing.B) {
			drive(b, benchClients, redisN(b), 0, "q", func(_, i int) error {
				p := g.queries[i%len(g.queries)]
				for count := 30; ; count *= 2 {
					ids, err := g.rdb.GeoSearch(ctx, "kuzet:gis:units:police", &redis.GeoSearchQuery{
						Longitude: p.Lon, Latitude: p.Lat, Radius: 60, RadiusUnit: "km", Sort: "ASC", Count: count}).Result()
					if err != nil {
						return err
					}
					infos, err := g.rdb.HMGet(ctx, "kuzet:gis:unitinfo", ids...).Result()
					if err != nil {
						return err
					}
					found := 0
					for _, v := range infos {
						s, _ := v.(string)
						var u gis.UnitInfo
						if json.Unmarshal([]byte(s), &u) == nil && u.Status == "available" {
							found++
						}
					}
					if found >= 10 || len(ids) < count {
						return nil
					}
				}
			})
		})
	}
}

// benchHTTPFloor drives a bare net/http server on loopback whose handler
// only writes a fixed body of the recommendations answer's size, the same
// ways as our endpoint: the cost of HTTP itself on this machine, which no
// handler can go below.
func benchHTTPFloor(b *testing.B, g *gisBench, size int) {
	body := bytes.Repeat([]byte("x"), size)
	floor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeRawJSON(w, http.StatusOK, body)
	}))
	defer floor.Close()
	fg := &gisBench{http: floor}
	b.Run("floor-nethttp-fixed-answer", func(b *testing.B) {
		cs := fg.rawClients(b, benchClients, "x")
		drive(b, benchClients, b.N, 0, "q", func(c, _ int) error { return cs[c].Get("/") })
	})
	for _, rate := range benchPacedRates {
		b.Run(fmt.Sprintf("floor-nethttp-fixed-answer-paced-%d", rate), func(b *testing.B) {
			cs := fg.rawClients(b, benchClients, "x")
			drive(b, benchClients, b.N, float64(rate), "q", func(c, _ int) error { return cs[c].Get("/") })
		})
	}
	job := loadgenJob{Addr: floor.Listener.Addr().String(), Token: "x", Paths: []string{"/"}, Clients: benchClients}
	b.Run("floor-nethttp-fixed-answer-process", func(b *testing.B) {
		job.Total, job.Rate = b.N, 0
		loadFromProcess(b, job, "q")
	})
	for _, rate := range benchPacedRates {
		b.Run(fmt.Sprintf("floor-nethttp-fixed-answer-process-paced-%d", rate), func(b *testing.B) {
			job.Total, job.Rate = b.N, float64(rate)
			loadFromProcess(b, job, "q")
		})
	}
}

// checkRecommendations makes sure the benchmarked request answers ten
// recommendations, nearest available first.
func (g *gisBench) checkRecommendations(b *testing.B, path, tok string) {
	c := g.rawClients(b, 1, tok)[0]
	if err := c.Get(path); err != nil {
		b.Fatal(err)
	}
	var ans struct {
		Recommendations []gis.Recommendation `json:"recommendations"`
	}
	if err := json.Unmarshal(c.Body(), &ans); err != nil || len(ans.Recommendations) != 10 {
		b.Fatalf("recommendations: %v, %d of 10\n%s", err, len(ans.Recommendations), c.Body())
	}
	for _, rc := range ans.Recommendations {
		if rc.Status != "available" {
			b.Fatalf("recommended %s with status %s", rc.UnitID, rc.Status)
		}
	}
}

func (g *gisBench) rawClients(b *testing.B, n int, tok string) []*loadgen.RawConn {
	cs := make([]*loadgen.RawConn, n)
	for i := range cs {
		c, err := loadgen.DialRaw(g.http.Listener.Addr().String(), tok)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		cs[i] = c
	}
	return cs
}

// reportLoad reports a loadgen.Result (the late share only for a paced
// run: a closed loop is never late).
func reportLoad(b *testing.B, r loadgen.Result, rate float64, unit string) {
	b.ReportMetric(r.P50, "p50-µs")
	b.ReportMetric(r.P99, "p99-µs")
	b.ReportMetric(r.P999, "p99.9-µs")
	if rate > 0 {
		b.ReportMetric(r.LatePct, "late-%")
	}
	b.ReportMetric(r.PerSec(), unit+"/s")
}

// drive is loadgen.Run in this process: total requests from n clients,
// op(c, i) with i in 0..total-1, closed loop (rate 0) or paced at rate
// per second in all. It reports the figures and the process CPU per
// request (server and clients together).
func drive(b *testing.B, n, total int, rate float64, unit string, op func(c, i int) error) {
	b.Helper()
	b.ResetTimer()
	total = max(total, 1)
	r, err := loadgen.Run(min(n, total), total, rate, op)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	reportLoad(b, r, rate, unit)
	b.ReportMetric(r.CPU/float64(r.N), "cpu-µs/op")
}

// Load from another process: the benchmark re-runs its own test binary as
// the load generator (TestMain sees KUZET_LOADGEN), the way wrk or
// redis-benchmark run beside a server, so the server process's CPU per
// request is measured alone and the clients do not share its Go scheduler.
const loadgenEnv = "KUZET_LOADGEN"

type loadgenJob struct {
	Addr    string   `json:"addr"`
	Token   string   `json:"token"`
	Paths   []string `json:"paths"`
	Clients int      `json:"clients"`
	Total   int      `json:"total"`
	Rate    float64  `json:"rate"`
}

// loadgenMain runs a job given in the environment and prints its result.
func loadgenMain(job string) int {
	var j loadgenJob
	if err := json.Unmarshal([]byte(job), &j); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 2
	}
	r, err := loadgen.GetPaths(j.Addr, j.Token, j.Paths, j.Clients, j.Total, j.Rate)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// loadFromProcess runs job in a child process and reports its figures,
// this (server) process's CPU per request and the child's.
func loadFromProcess(b *testing.B, job loadgenJob, unit string) {
	b.Helper()
	js, _ := json.Marshal(job)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), loadgenEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	b.ResetTimer()
	cpu0 := loadgen.ProcessCPU()
	out, err := cmd.Output()
	cpu := loadgen.ProcessCPU() - cpu0
	b.StopTimer()
	if err != nil {
		b.Fatalf("load generator: %v", err)
	}
	var r loadgen.Result
	if err := json.Unmarshal(out, &r); err != nil || r.N == 0 {
		b.Fatalf("load generator said %q: %v", out, err)
	}
	reportLoad(b, r, job.Rate, unit)
	b.ReportMetric(float64(cpu.Microseconds())/float64(r.N), "server-cpu-µs/op")
	b.ReportMetric(r.CPU/float64(r.N), "client-cpu-µs/op")
}

func TestMain(m *testing.M) {
	if job := os.Getenv(loadgenEnv); job != "" {
		os.Exit(loadgenMain(job))
	}
	os.Exit(m.Run())
}

// BenchmarkGISIngestOsmAnd: single-fix OsmAnd GET requests (device token in
// the query), 16 clients over 256 devices, embedded tracker.
func BenchmarkGISIngestOsmAnd(b *testing.B) {
	g := newGISBench(b, false, 256)
	ctx := context.Background()
	const devices, conc = 256, 16
	toks := make([]string, devices)
	for i := range devices {
		_, tok, err := g.authn.AddDevice(ctx, fmt.Sprintf("dev-%03d", i), benchUnit(i), "")
		if err != nil {
			b.Fatal(err)
		}
		toks[i] = tok
	}
	base := time.Now().Add(-30 * time.Minute).UnixMilli()
	var clock atomic.Int64
	drive(b, conc, b.N, 0, "fixes", func(c, i int) error {
		d := c + conc*(i/conc%(devices/conc)) // each device belongs to one client: its fixes stay in order
		ts := base + clock.Add(1)
		lat := almatyLat + float64(i%1000)*1e-5
		return g.get(fmt.Sprintf("/ingest/osmand?id=dev-%03d&timestamp=%d&lat=%.6f&lon=%.6f&speed=12.0&bearing=90&accuracy=8&batt=80&token=%s",
			d, ts, lat, almatyLon, url.QueryEscape(toks[d])), "")
	})
}

// BenchmarkGISIngestBatch: POST /api/v1/positions/batch with 1,000 fixes
// per request (a gateway), 4 clients, 10,000 units; embedded, Redis with
// the test server's journal policy (AOF, appendfsync always), and a
// positions-only Redis without AOF (positions are durability class B).
func BenchmarkGISIngestBatch(b *testing.B) {
	for _, name := range []string{"embedded", "redis-aof-always", "redis-no-aof"} {
		b.Run(name, func(b *testing.B) {
			const units, per = 10_000, 1000
			withRedis := name != "embedded"
			g := newGISBench(b, withRedis, units)
			if name == "redis-no-aof" {
				if err := g.rdb.ConfigSet(context.Background(), "appendonly", "no").Err(); err != nil {
					b.Fatal(err)
				}
			}
			tok := g.tokens[auth.RoleGateway]
			total := b.N
			// Bodies prepared up front; body k moves units k*1000.. at time
			// base+k ms, so every fix is newer than the last for its unit
			// (the loaded ones are up to 10 min old).
			base := time.Now()
			bodies := make([][]byte, total+1)
			rng := rand.New(rand.NewPCG(3, 4))
			for k := 1; k <= total; k++ {
				var buf bytes.Buffer
				buf.WriteString(`{"fixes":[`)
				ts := base.Add(time.Duration(k) * time.Millisecond).UTC().Format(time.RFC3339Nano)
				for j := range per {
					if j > 0 {
						buf.WriteByte(',')
					}
					p := randPoint(rng)
					fmt.Fprintf(&buf, `{"unit_id":%q,"lat":%.6f,"lon":%.6f,"time":%q,"speed":8.5,"accuracy":6}`, benchUnit((k*per+j)%units), p.Lat, p.Lon, ts)
				}
				buf.WriteString(`]}`)
				bodies[k] = buf.Bytes()
			}
			var applied atomic.Int64
			drive(b, 4, total, 0, "batches", func(_, k int) error {
				req, _ := http.NewRequest("POST", g.http.URL+"/api/v1/positions/batch", bytes.NewReader(bodies[k+1]))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				resp, err := g.client.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				var ans batchAnswer
				if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != 200 {
					return fmt.Errorf("batch: %d %v", resp.StatusCode, err)
				}
				applied.Add(int64(ans.Applied))
				return nil
			})
			if applied.Load() < int64(total*per)*9/10 {
				b.Fatalf("only %d of %d fixes applied", applied.Load(), total*per)
			}
			b.ReportMetric(float64(per), "fixes/batch")
		})
	}
}

// BenchmarkGISFanout: 10,000 units moving at 1 Hz (1,000 fixes every
// 100 ms through Tracker.UpdateBatch), 1,000 positions-WebSocket clients
// each watching a random 8 × 8 km window of the 40 × 40 km box. Reports the
// p50/p99 delay from the fix being stored to the batch arriving at the
// client socket (the Feed coalesces for up to 250 ms by design), and the
// process CPU (server, publisher and the 1,000 clients together).
//
//	go test -run '^$' -bench 'GISFanout' -benchtime 1x ./web/
func BenchmarkGISFanout(b *testing.B) {
	for _, iv := range []time.Duration{250 * time.Millisecond, 100 * time.Millisecond} {
		b.Run("interval="+iv.String(), func(b *testing.B) { benchFanout(b, iv) })
	}
}

func benchFanout(b *testing.B, interval time.Duration) {
	const units, nClients = 10_000, 1000
	dur := 10 * time.Second
	benchFeedInterval = interval
	g := newGISBench(b, false, units)
	benchFeedInterval = 0
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go g.feed.Run(ctx)
	rng := rand.New(rand.NewPCG(5, 6))
	tok := g.tokens[auth.RoleViewer]
	var (
		mu      sync.Mutex
		lats    []int64 // ms
		bytesIn atomic.Int64
		wg      sync.WaitGroup
	)
	measuring := atomic.Bool{}
	conns := make([]*websocket.Conn, 0, nClients)
	for range nClients {
		d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
		c, _, err := d.Dial("ws"+strings.TrimPrefix(g.http.URL, "http")+"/api/v1/positions/stream", bearerHeader(tok))
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		p := randPoint(rng)
		// 8 km ≈ 0.072° lat, 0.099° lon.
		bbox := []float64{p.Lon - 0.049, p.Lat - 0.036, p.Lon + 0.049, p.Lat + 0.036}
		if err := c.WriteJSON(map[string]any{"type": "subscribe", "bbox": bbox}); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []int64
			for {
				_, data, err := c.ReadMessage()
				if err != nil {
					break
				}
				now := time.Now().UnixMilli()
				if !measuring.Load() || !bytes.HasPrefix(data, []byte(`{"type":"positions"`)) {
					continue
				}
				bytesIn.Add(int64(len(data)))
				// Scan the "t" (fix time, unix ms) of every unit without a
				// full JSON decode: the clients share the server's 2 cores.
				for rest := data; ; {
					k := bytes.Index(rest, []byte(`"t":`))
					if k < 0 {
						break
					}
					rest = rest[k+4:]
					e := bytes.IndexByte(rest, ',')
					if t, err := strconv.ParseInt(string(rest[:e]), 10, 64); err == nil {
						local = append(local, now-t)
					}
				}
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	// Publisher: 1,000 of the 10,000 units every 100 ms, stamped now.
	pub := func(d time.Duration) (int, int) {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		batch := make([]gis.UnitFix, 1000)
		end := time.Now().Add(d)
		next, sent, late := 0, 0, 0
		for time.Now().Before(end) {
			<-tk.C
			now := time.Now()
			for j := range batch {
				p := randPoint(rng)
				batch[j] = gis.UnitFix{UnitID: benchUnit(next), Fix: gis.Fix{DeviceID: "b", Lat: p.Lat, Lon: p.Lon, Time: now, Speed: 10, Heading: 90, Accuracy: 8, Battery: -1}}
				next = (next + 1) % units
			}
			if _, err := g.tr.UpdateBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
			sent += len(batch)
			if time.Since(now) > 100*time.Millisecond {
				late++
			}
		}
		return sent, late
	}
	pub(2 * time.Second) // warm-up: every client has its snapshot and first batches
	measuring.Store(true)
	b.ResetTimer()
	cpu0, t0 := loadgen.ProcessCPU(), time.Now()
	sent, late := pub(dur)
	el, cpu := time.Since(t0), loadgen.ProcessCPU()-cpu0
	measuring.Store(false)
	b.StopTimer()
	subs := g.feed.Subscribers()
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	slices.Sort(lats)
	if len(lats) == 0 {
		b.Fatal("no positions received")
	}
	pct := func(p float64) float64 { return float64(lats[int(p*float64(len(lats)-1))]) }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(float64(sent)/el.Seconds(), "fixes/s")
	b.ReportMetric(float64(len(lats))/el.Seconds(), "unit-updates-delivered/s")
	b.ReportMetric(float64(bytesIn.Load())/el.Seconds()/1e6, "MB/s")
	b.ReportMetric(cpu.Seconds()/el.Seconds(), "cpu-cores")
	b.ReportMetric(float64(subs), "subscribers-at-end")
	b.ReportMetric(float64(late), "publisher-late-ticks")
}

// settle waits until the process is nearly idle: with Redis, the tracker
// is still applying its own load-time update messages for a while.
func settle(b *testing.B) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		c0 := loadgen.ProcessCPU()
		time.Sleep(250 * time.Millisecond)
		if loadgen.ProcessCPU()-c0 < 50*time.Millisecond {
			return
		}
	}
	b.Log("process did not settle within 30 s")
}
