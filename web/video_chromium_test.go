package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/auth"
)

// chromiumPath is where Debian's chromium package (installed by
// scripts/test) puts the browser.
const chromiumPath = "/usr/bin/chromium"

// pageReport is what a test page POSTs to /test/report every 500 ms.
type pageReport struct {
	Page      string    `json:"page"`
	State     string    `json:"state"`
	Frames    int       `json:"frames"`
	Codec     string    `json:"codec"`
	Error     string    `json:"error"`
	Latencies []float64 `json:"latencies"`
	Bad       int       `json:"bad"`
}

// browserHarness serves the fixture's API plus the test pages and collects
// their reports.
type browserHarness struct {
	t       testing.TB
	f       *fixture
	http    *httptest.Server
	reports chan pageReport
	stun    string // if set, the pages use this STUN server (see open)
}

func newBrowserHarness(t testing.TB, f *fixture) *browserHarness {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (Debian: apt-get install chromium; scripts/test installs it): %v", chromiumPath, err)
	}
	h := &browserHarness{t: t, f: f, reports: make(chan pageReport, 1000)}
	mux := http.NewServeMux()
	mux.Handle("/", f.srv.Handler())
	mux.Handle("GET /test/video/", http.StripPrefix("/test/video/", http.FileServer(http.Dir("testdata/video"))))
	mux.HandleFunc("POST /test/report", func(w http.ResponseWriter, r *http.Request) {
		var rep pageReport
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&rep); err == nil {
			select {
			case h.reports <- rep:
			default:
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	h.http = httptest.NewServer(mux)
	t.Cleanup(h.http.Close)
	return h
}

// open starts a headless Chromium on one page, with a fake camera and no
// permission prompts. Its process group is killed at cleanup.
func (h *browserHarness) open(page, stream string, token string) {
	h.t.Helper()
	v := url.Values{"stream": {stream}, "token": {token}}
	if h.stun != "" {
		v.Set("stun", h.stun)
	}
	frag := v.Encode()
	u := h.http.URL + "/test/video/" + page + "#" + frag
	cmd := exec.Command(chromiumPath, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
		"--disable-background-timer-throttling", "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
		"--user-data-dir="+h.t.TempDir(), u)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("start chromium: %v", err)
	}
	pid := cmd.Process.Pid
	h.t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the browser and the renderers it started
		_ = cmd.Wait()
		if h.t.Failed() && testing.Verbose() {
			h.t.Logf("chromium %s output:\n%s", page, out.String())
		}
	})
}

// until reads reports until ok returns true for one, failing on a page
// error or after within.
func (h *browserHarness) until(within time.Duration, what string, ok func(pageReport) bool) pageReport {
	h.t.Helper()
	deadline := time.After(within)
	last := map[string]pageReport{}
	for {
		select {
		case r := <-h.reports:
			last[r.Page] = r
			if r.Error != "" {
				h.t.Fatalf("%s page: %s", r.Page, r.Error)
			}
			if ok(r) {
				return r
			}
		case <-deadline:
			h.t.Fatalf("no %s within %v; last reports: %+v (run with -v for Chromium's output)", what, within, last)
		}
	}
}

// TestChromiumWHIPToWHEP: headless Chromium publishes its fake camera over
// WHIP as the unit's device, another Chromium plays the stream over WHEP
// as a dispatcher, and its framesDecoded keeps growing.
//
// The pages name a STUN server that never answers, so ICE gathering stays
// open after the 150 ms the client waits: the offers go out at once and
// the end of the candidates follows by trickle ICE (PATCH).
func TestChromiumWHIPToWHEP(t *testing.T) {
	f := newFixture(t)
	h := newBrowserHarness(t, f)
	h.stun = "stun:127.0.0.1:9" // discard port: no STUN answer
	stream := "unit:" + f.unit
	h.open("publish.html", stream, f.tokens[auth.RoleDevice])
	pub := h.until(35*time.Second, "publishing (connected, frames encoded)", func(r pageReport) bool {
		return r.Page == "publish" && r.State == "connected" && r.Frames > 0
	})
	if pub.Codec != "video/H264" {
		t.Fatalf("publisher sends %q, want video/H264", pub.Codec)
	}
	h.open("watch.html", stream, f.tokens[auth.RoleDispatcher])
	first := h.until(25*time.Second, "decoded frames at the viewer", func(r pageReport) bool {
		return r.Page == "watch" && r.Frames > 0
	})
	// framesDecoded keeps growing: 8 more reports (4 s), each higher.
	last, grew := first.Frames, 0
	h.until(15*time.Second, "framesDecoded growing in 8 reports", func(r pageReport) bool {
		if r.Page != "watch" {
			return false
		}
		if r.Frames <= last {
			t.Fatalf("framesDecoded stalled at %d (state %s)", r.Frames, r.State)
		}
		last = r.Frames
		grew++
		return grew == 8
	})
	if fps := float64(last-first.Frames) / 4; fps < 10 {
		t.Fatalf("viewer decodes %.1f frames/s, want >= 10 (fake camera sends 25)", fps)
	}
	// The browser's view is in the journal (its start, at least).
	found := false
	for _, v := range f.videoViews() {
		found = found || (v.StreamID == stream && v.Viewer == "user:dispatcher1")
	}
	if !found {
		t.Fatal("the browser's view is not in the journal")
	}
	// Both browsers trickled (at least the end of their candidates).
	deadline := time.Now().Add(30 * time.Second)
	for f.srv.cfg.Video.Metrics().TrickleFragments.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d trickle ICE PATCHes accepted, want one from each browser", f.srv.cfg.Video.Metrics().TrickleFragments.Load())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// BenchmarkGlassToGlass measures the delay from drawing the time into the
// published picture (Chromium canvas → WHIP) to reading it back from a
// presented frame at a WHEP viewer (Chromium), both on loopback through
// the server. Run with -benchtime 1x; KUZET_G2G_SECONDS sets the window
// (default 20 s).
func BenchmarkGlassToGlass(b *testing.B) {
	f := newBenchFixture(b)
	h := newBrowserHarness(b, f)
	stream := "unit:" + f.unit
	h.open("g2g-publish.html", stream, f.tokens[auth.RoleDevice])
	h.until(25*time.Second, "publishing", func(r pageReport) bool { return r.Page == "publish" && r.State == "connected" && r.Frames > 0 })
	h.open("g2g-watch.html", stream, f.tokens[auth.RoleDispatcher])
	h.until(20*time.Second, "decoded clock frames", func(r pageReport) bool { return r.Page == "watch" && len(r.Latencies) > 0 })
	window := 20 * time.Second
	if s := os.Getenv("KUZET_G2G_SECONDS"); s != "" {
		var n int
		fmt.Sscan(s, &n)
		window = time.Duration(n) * time.Second
	}
	time.Sleep(2 * time.Second) // warm-up: encoder ramp-up and the first keyframes are not measured
	drain := func() {
		for {
			select {
			case <-h.reports:
			default:
				return
			}
		}
	}
	drain()
	var lat []float64
	bad, frames0, frames1 := 0, -1, 0
	var mu sync.Mutex
	b.ResetTimer()
	end := time.After(window)
loop:
	for {
		select {
		case r := <-h.reports:
			if r.Page != "watch" {
				continue
			}
			mu.Lock()
			lat = append(lat, r.Latencies...)
			bad += r.Bad
			if frames0 < 0 {
				frames0 = r.Frames
			}
			frames1 = r.Frames
			mu.Unlock()
		case <-end:
			break loop
		}
	}
	b.StopTimer()
	if len(lat) < 50 {
		b.Fatalf("only %d frames read back in %v (%d unreadable)", len(lat), window, bad)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return lat[int(p*float64(len(lat)-1))] }
	b.ReportMetric(q(0.50), "ms-p50")
	b.ReportMetric(q(0.95), "ms-p95")
	b.ReportMetric(lat[len(lat)-1], "ms-max")
	b.ReportMetric(float64(frames1-frames0)/window.Seconds(), "fps")
	b.ReportMetric(float64(bad), "unreadable")
	b.Logf("%d frames read: p50 %.0f ms, p95 %.0f ms, max %.0f ms; %d unreadable", len(lat), q(0.5), q(0.95), lat[len(lat)-1], bad)
}

// TestChromiumWallLanguages: headless Chromium renders the video wall for
// the fixture's incident in each language, with the token in the fragment:
// the labels, the title and the status line are in that language, and
// without a token the page says to sign in first.
func TestChromiumWallLanguages(t *testing.T) {
	f := newFixture(t)
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (Debian: apt-get install chromium; scripts/test installs it): %v", chromiumPath, err)
	}
	dump := func(u string) string {
		t.Helper()
		cmd := exec.Command(chromiumPath, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", u)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("chromium --dump-dom %s: %v\n%s", u, err, errb.String())
			}
		case <-time.After(60 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("chromium --dump-dom %s: no answer in 60 s", u)
		}
		return out.String()
	}
	frag := "#" + url.Values{"token": {f.tokens[auth.RoleViewer]}, "incident": {f.inc}}.Encode()
	for lang, want := range map[string][]string{
		"kk": {`lang="kk"`, "Kuzet — бейнеқабырға", ">Оқиға<", "Бейнені көрсету", "Бұл оқиға бойынша бейне жоқ"},
		"ru": {`lang="ru"`, "Kuzet — видеостена", ">Происшествие<", "Показать видео", "По этому происшествию видео нет"},
		"en": {`lang="en"`, "Kuzet — video wall", ">Incident<", "Show video", "No video for this incident"},
	} {
		dom := dump(f.http.URL + "/wall?lang=" + lang + frag)
		for _, w := range want {
			if !strings.Contains(dom, w) {
				t.Errorf("%s wall lacks %q:\n%s", lang, w, dom)
			}
		}
	}
	if dom := dump(f.http.URL + "/wall?lang=ru#incident=" + f.inc); !strings.Contains(dom, "Сначала войдите в систему") {
		t.Errorf("wall without a token:\n%s", dom)
	}
}
