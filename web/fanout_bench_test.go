package web

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/internal/auth"
)

// BenchmarkFanout1000Consoles measures, for 1,000 connected consoles, the
// time from a dispatcher creating an incident (the command issued, through
// the fsynced journal) until each console has received its event. 20
// incidents a second, like a very busy centre. Target: p99 ≤ 50 ms embedded.
func BenchmarkFanout1000Consoles(b *testing.B) {
	f := newBenchFixture(b)
	const consoles, rate = 1000, 20
	var (
		mu       sync.Mutex
		sent     = map[string]time.Time{}
		lat      []time.Duration
		ready    sync.WaitGroup
		received sync.WaitGroup
	)
	conns := make([]*websocket.Conn, consoles)
	for i := range conns {
		c, _, err := f.dial(nil, "/api/v1/stream", bearerHeader(f.tokens[auth.RoleDispatcher]))
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
		defer c.Close()
	}
	marker := []byte(`"narrative":"fan-`)
	for _, c := range conns {
		ready.Add(1)
		go func() {
			first := true
			for {
				_, msg, err := c.ReadMessage()
				at := time.Now()
				if err != nil {
					return
				}
				if first {
					first = false
					ready.Done()
					continue
				}
				i := bytes.Index(msg, marker)
				if i < 0 {
					continue
				}
				name := msg[i+len(`"narrative":"`):]
				name = name[:bytes.IndexByte(name, '"')]
				mu.Lock()
				if t0, ok := sent[string(name)]; ok {
					lat = append(lat, at.Sub(t0))
					received.Done()
				}
				mu.Unlock()
			}
		}()
	}
	ready.Wait()
	b.ResetTimer()
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	for i := range b.N {
		<-tick.C
		name := fmt.Sprintf("fan-%d", i)
		received.Add(consoles)
		mu.Lock()
		sent[name] = time.Now()
		mu.Unlock()
		if _, err := f.svc.CreateIncident(context.Background(), sup, dispatch.NewIncident{Type: "NOISE", Location: dispatch.Location{Lat: 43.2, Lon: 76.9}, Narrative: name}); err != nil {
			b.Fatal(err)
		}
	}
	received.Wait()
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
