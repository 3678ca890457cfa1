package loadgen

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRawConn: answers are read by their length over one connection, the
// token and host are sent, and a non-200, a chunked answer or a missing
// length is an error that says so.
func TestRawConn(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			body := r.Header.Get("Authorization") + "|" + r.Host + "|" + strings.Repeat("x", 5000)
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write([]byte(body))
		case "/missing":
			http.Error(w, "no such thing", http.StatusNotFound)
		case "/chunked":
			w.Write([]byte("part"))
			w.(http.Flusher).Flush()
			w.Write([]byte("more"))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	c, err := DialRaw(addr, "tok123")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		if err := c.Get("/ok"); err != nil {
			t.Fatal(err)
		}
		if want := "Bearer tok123|" + addr + "|"; !strings.HasPrefix(string(c.Body()), want) || len(c.Body()) != len(want)+5000 {
			t.Fatalf("body %.60q… (%d bytes)", c.Body(), len(c.Body()))
		}
	}
	if err := c.Get("/missing"); err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "no such thing") {
		t.Fatalf("404: %v", err)
	}
	if err := c.Get("/ok"); err != nil {
		t.Fatalf("after a 404 the connection goes on: %v", err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1 kept alive", n)
	}
	if err := c.Get("/chunked"); err == nil || !strings.Contains(err.Error(), "Transfer-Encoding") {
		t.Fatalf("chunked: %v", err)
	}
}

// TestRun: a closed loop makes every request; a paced run holds its rate
// (200 requests at 2,000/s take about 0.1 s); an error stops the run and is
// returned.
func TestRun(t *testing.T) {
	var n atomic.Int64
	r, err := Run(4, 400, 0, func(c, i int) error { n.Add(1); return nil })
	if err != nil || r.N != 400 || n.Load() != 400 || r.P99 < r.P50 {
		t.Fatalf("closed loop: %+v %v (%d calls)", r, err, n.Load())
	}
	start := time.Now()
	r, err = Run(4, 200, 2000, func(c, i int) error { return nil })
	if el := time.Since(start); err != nil || r.N != 200 || el < 90*time.Millisecond || el > 2*time.Second {
		t.Fatalf("paced: %+v %v in %v", r, err, el)
	}
	boom := errors.New("boom")
	if _, err := Run(2, 10, 0, func(c, i int) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("error: %v", err)
	}
	if _, err := Run(0, 10, 0, nil); err == nil {
		t.Fatal("no clients accepted")
	}
}
