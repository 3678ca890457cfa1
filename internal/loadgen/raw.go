package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// RawConn is a keep-alive HTTP/1.1 client on one TCP connection that writes
// a prebuilt GET and reads the answer by its Content-Length, without
// allocating per request (the way wrk works), so a load generator sharing
// cores with the server costs little. It speaks the real wire format; the
// answers must carry a Content-Length (chunked answers are an error).
type RawConn struct {
	conn net.Conn
	br   *bufio.Reader
	host string
	tok  string
	req  []byte
	body []byte
}

// DialRaw connects to addr (host:port) and sends token as a bearer token
// ("" for none).
func DialRaw(addr, token string) (*RawConn, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &RawConn{conn: conn, br: bufio.NewReaderSize(conn, 16<<10), host: addr, tok: token}, nil
}

// Close closes the connection.
func (c *RawConn) Close() error { return c.conn.Close() }

// Body is the last answer's body, valid until the next Get.
func (c *RawConn) Body() []byte { return c.body }

// Get sends GET path and reads the whole answer; a status other than 200
// is an error naming the status and body.
func (c *RawConn) Get(path string) error {
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.host...)
	if c.tok != "" {
		c.req = append(c.req, "\r\nAuthorization: Bearer "...)
		c.req = append(c.req, c.tok...)
	}
	c.req = append(c.req, "\r\n\r\n"...)
	if _, err := c.conn.Write(c.req); err != nil {
		return err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " {
		return fmt.Errorf("GET %s: bad status line %q", path, line)
	}
	status := string(line[9:12])
	length := -1
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(h) <= 2 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte{':'})
		switch {
		case !ok:
			return fmt.Errorf("GET %s: bad header line %q", path, h)
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil || length < 0 || length > 64<<20 {
				return fmt.Errorf("GET %s: bad Content-Length %q", path, v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			return fmt.Errorf("GET %s: Transfer-Encoding %q is not read here (answers need a Content-Length)", path, bytes.TrimSpace(v))
		}
	}
	if length < 0 {
		return fmt.Errorf("GET %s: answer without Content-Length", path)
	}
	if cap(c.body) < length {
		c.body = make([]byte, length)
	}
	c.body = c.body[:length]
	if _, err := io.ReadFull(c.br, c.body); err != nil {
		return err
	}
	if status != "200" {
		return fmt.Errorf("GET %s: %s %s", path, status, c.body)
	}
	return nil
}

// Nearest asks for k recommendations for the server's open incidents (up
// to 64 of them, in turn) from clients connections, requests in all, closed
// loop (rate 0) or at rate per second offered. It speaks plain HTTP/1.1 to
// c.Base (an https URL is refused: point it at a node, not a TLS proxy).
func Nearest(ctx context.Context, c *Client, clients, requests, k int, rate float64) (Result, error) {
	u, err := url.Parse(c.Base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return Result{}, fmt.Errorf("nearest mode needs a plain http:// URL of a node, not %q", c.Base)
	}
	var list struct {
		Incidents []Incident `json:"incidents"`
	}
	if err := c.Do(ctx, "GET", "/api/v1/incidents?limit=64", "", nil, &list); err != nil {
		return Result{}, err
	}
	if len(list.Incidents) == 0 {
		return Result{}, errors.New("no open incidents to ask about (--mode commands creates some)")
	}
	paths := make([]string, len(list.Incidents))
	for i, in := range list.Incidents {
		paths[i] = "/api/v1/incidents/" + url.PathEscape(in.ID) + "/recommendations?k=" + strconv.Itoa(k)
	}
	return GetPaths(u.Host, c.Token, paths, clients, requests, rate)
}

// GetPaths runs total GETs of paths, in turn, from clients RawConns to addr
// (see Run for rate).
func GetPaths(addr, token string, paths []string, clients, total int, rate float64) (Result, error) {
	if len(paths) == 0 {
		return Result{}, errors.New("loadgen: no paths")
	}
	conns := make([]*RawConn, clients)
	for i := range conns {
		c, err := DialRaw(addr, token)
		if err != nil {
			return Result{}, err
		}
		defer c.Close()
		conns[i] = c
	}
	return Run(clients, max(total, clients), rate, func(ci, i int) error { return conns[ci].Get(paths[i%len(paths)]) })
}

// Result is what Run measured.
type Result struct {
	N       int     `json:"n"`
	Seconds float64 `json:"s"`
	P50     float64 `json:"p50_us"`
	P99     float64 `json:"p99_us"`
	P999    float64 `json:"p999_us"`
	LatePct float64 `json:"late_pct"`
	CPU     float64 `json:"cpu_us"` // this process's CPU over the run
}

// PerSec is requests per second.
func (r Result) PerSec() float64 { return float64(r.N) / r.Seconds }

func (r Result) String() string {
	return fmt.Sprintf("%d in %.1f s = %.0f/s; p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs; %.1f %% sent late; this process %.1f µs CPU each",
		r.N, r.Seconds, r.PerSec(), r.P50, r.P99, r.P999, r.LatePct, r.CPU/float64(max(r.N, 1)))
}

// Run sends total requests from n clients; op(c, i) sends request i from
// client c. With rate 0 each client sends its next request when the last
// is answered (closed loop, the most requests/s). With a rate, the clients
// offer rate requests/s in all, each its share, staggered: client c sends
// its i-th request at its slot, or at once if it is past the slot; LatePct
// is the share sent more than 1 ms after their slot (the offered rate was
// not held). Latency counts from the send to the whole answer, not from
// the slot: Go's timers wake an idle process with about 1 ms granularity,
// so counting from the slot would charge the client's own oversleeping to
// the server; LatePct shows any backlog instead.
func Run(n, total int, rate float64, op func(c, i int) error) (Result, error) {
	if n < 1 || total < n {
		return Result{}, fmt.Errorf("loadgen: %d clients for %d requests", n, total)
	}
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(n) / rate * 1e9)
	}
	per := total / n
	lats := make([][]time.Duration, n)
	errs := make([]error, n)
	var late atomic.Int64
	var wg sync.WaitGroup
	start, cpu0 := time.Now().Add(time.Millisecond), ProcessCPU()
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lats[c] = make([]time.Duration, 0, per)
			offset := time.Duration(c) * interval / time.Duration(n)
			for i := range per {
				if rate > 0 {
					slot := start.Add(offset + time.Duration(i)*interval)
					if d := time.Until(slot); d > 0 {
						time.Sleep(d)
					}
					if time.Since(slot) > time.Millisecond {
						late.Add(1)
					}
				}
				t0 := time.Now()
				if errs[c] = op(c, c*per+i); errs[c] != nil {
					return
				}
				lats[c] = append(lats[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	el, cpu := time.Since(start), ProcessCPU()-cpu0
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Nanoseconds()) / 1e3 }
	return Result{N: len(all), Seconds: el.Seconds(), P50: pct(0.5), P99: pct(0.99), P999: pct(0.999),
		LatePct: 100 * float64(late.Load()) / float64(len(all)), CPU: float64(cpu.Microseconds())}, nil
}

// ProcessCPU is this process's user + system CPU time so far.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
