// Package loadgen drives a running Kuzet server over its public API, the
// way consoles do, and measures what users would feel: acknowledged
// commands per second and their latency, and how long an event takes to
// reach every connected console. `kuzet loadgen` and the crash and
// benchmark tests use it.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
)

// Client talks to one server with one token.
type Client struct {
	Base  string // http://127.0.0.1:8080
	Token string
	HTTP  *http.Client
}

// NewClient returns a client with a connection pool sized for load.
func NewClient(base string) *Client {
	tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 30 * time.Second}
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// Do sends a JSON request and decodes a JSON answer into out (if non-nil).
func (c *Client) Do(ctx context.Context, method, path, idemKey string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &StatusError{Status: resp.StatusCode, Body: string(b)}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// SignIn gets a session token.
func (c *Client) SignIn(ctx context.Context, username, password string) error {
	var out struct {
		Token string `json:"token"`
	}
	if err := c.Do(ctx, "POST", "/api/v1/sessions", "", map[string]string{"username": username, "password": password}, &out); err != nil {
		return fmt.Errorf("sign in as %s: %w", username, err)
	}
	c.Token = out.Token
	return nil
}

// Incident is the part of an incident the load generator reads.
type Incident struct {
	ID     string `json:"id"`
	Number string `json:"number"`
}

// CreateIncident creates a realistic incident somewhere in Almaty. The
// content follows from the narrative, so a retry with the same key sends
// the same request, as a real client's retry does.
func (c *Client) CreateIncident(ctx context.Context, idemKey string, narrative string) (Incident, error) {
	var in Incident
	h := fnv.New64a()
	h.Write([]byte(narrative))
	r := rand.New(rand.NewPCG(h.Sum64(), 0))
	err := c.Do(ctx, "POST", "/api/v1/incidents", idemKey, map[string]any{
		"type":      "DISTURBANCE",
		"location":  map[string]any{"lat": 43.2 + r.Float64()*0.1, "lon": 76.85 + r.Float64()*0.15, "address": "Алматы"},
		"narrative": narrative,
		"queue":     true,
	}, &in)
	return in, err
}

// NewKey returns a fresh idempotency key (UUIDv7).
func NewKey() string { return uuid.Must(uuid.NewV7()).String() }

// Latencies summarises durations.
type Latencies struct {
	N             int
	P50, P99, Max time.Duration
}

func summarise(d []time.Duration) Latencies {
	if len(d) == 0 {
		return Latencies{}
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return Latencies{N: len(d), P50: at(0.50), P99: at(0.99), Max: d[len(d)-1]}
}

func (l Latencies) String() string {
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", l.N, l.P50.Round(10*time.Microsecond), l.P99.Round(10*time.Microsecond), l.Max.Round(10*time.Microsecond))
}

// CommandsResult is what Commands measured.
type CommandsResult struct {
	Acked    int
	Failed   int
	Elapsed  time.Duration
	PerSec   float64
	Latency  Latencies
	FirstErr error
}

// Commands runs `workers` clients that each create incidents one after the
// other for d, every command with its own idempotency key, and counts the
// acknowledged ones.
func Commands(ctx context.Context, c *Client, workers int, d time.Duration) CommandsResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      []time.Duration
		failed   atomic.Int64
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for ctx.Err() == nil {
				t := time.Now()
				_, err := c.CreateIncident(ctx, NewKey(), "load test")
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	return CommandsResult{Acked: len(lat), Failed: int(failed.Load()), Elapsed: el, PerSec: float64(len(lat)) / el.Seconds(), Latency: summarise(lat), FirstErr: firstErr}
}

// FanoutResult is what Fanout measured.
type FanoutResult struct {
	Clients  int
	Events   int
	Received int
	Missing  int
	Latency  Latencies // command sent → event received, over every client and event
}

// Fanout connects `clients` WebSocket consoles, then creates `events`
// incidents at `rate` per second and measures, for every console and every
// incident, the time from sending the create command to receiving its
// event.
func Fanout(ctx context.Context, c *Client, clients, events int, rate float64) (FanoutResult, error) {
	u, err := url.Parse(c.Base)
	if err != nil {
		return FanoutResult{}, err
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = "/api/v1/stream"
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 16384}
	hdr := http.Header{"Authorization": {"Bearer " + c.Token}}

	type receipt struct {
		narrative string
		at        time.Time
	}
	var (
		mu       sync.Mutex
		receipts = make([][]receipt, clients)
		ready    sync.WaitGroup
		done     sync.WaitGroup
		conns    []*websocket.Conn
	)
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	for i := range clients {
		cn, _, err := dialer.DialContext(ctx, u.String(), hdr)
		if err != nil {
			return FanoutResult{}, fmt.Errorf("console %d: %w", i, err)
		}
		conns = append(conns, cn)
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			first := true
			for {
				_, b, err := cn.ReadMessage()
				if err != nil {
					if first {
						ready.Done()
					}
					return
				}
				at := time.Now()
				if first {
					first = false
					ready.Done()
					continue
				}
				var ev struct {
					Type string `json:"type"`
					Data struct {
						Narrative string `json:"narrative"`
					} `json:"data"`
				}
				if json.Unmarshal(b, &ev) == nil && ev.Type == "incident.created" {
					mu.Lock()
					receipts[i] = append(receipts[i], receipt{ev.Data.Narrative, at})
					mu.Unlock()
				}
			}
		}()
	}
	ready.Wait()

	sent := make(map[string]time.Time, events)
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i := range events {
		<-tick.C
		name := fmt.Sprintf("fanout-%d-%d", time.Now().UnixNano(), i)
		mu.Lock()
		sent[name] = time.Now()
		mu.Unlock()
		if _, err := c.CreateIncident(ctx, NewKey(), name); err != nil {
			return FanoutResult{}, fmt.Errorf("create event %d: %w", i, err)
		}
	}
	// Wait for the last events to arrive (bounded).
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := 0
		for _, r := range receipts {
			n += len(r)
		}
		mu.Unlock()
		if n >= clients*events {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	res := FanoutResult{Clients: clients, Events: events}
	var lat []time.Duration
	for _, rs := range receipts {
		for _, r := range rs {
			if t, ok := sent[r.narrative]; ok {
				lat = append(lat, r.at.Sub(t))
				res.Received++
			}
		}
	}
	res.Missing = clients*events - res.Received
	res.Latency = summarise(lat)
	if res.Missing > 0 {
		return res, errors.New("some consoles did not receive every event")
	}
	return res, nil
}
