package journaltest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kuzet/kuzet/dispatch/journal"
)

// BenchAppend measures acknowledged appends per second with many concurrent
// writers (64 goroutines, as many consoles), each command a typical
// incident.created record on its own aggregate.
func BenchAppend(b *testing.B, j journal.Journal) {
	data, _ := json.Marshal(map[string]any{
		"incident_id": "0192f7c4-6e6b-7cc1-9a55-1c4d2f0a7b11", "type": "DISTURBANCE", "priority": 3, "status": "queued",
		"location":  map[string]any{"lat": 43.2383, "lon": 76.9453, "address": "Абай даңғылы, 10"},
		"narrative": "Подъезде шу, көршілер шағымданады",
	})
	var n atomic.Int64
	b.SetParallelism(32) // × GOMAXPROCS goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			agg := fmt.Sprintf("incident:%d", n.Add(1))
			_, err := j.Append(ctx, journal.Append{
				IdemKey: agg, Fingerprint: "f",
				Expect: []journal.Expectation{{Aggregate: agg}},
				Events: []journal.Record{{Type: "incident.created", Aggregate: agg, Time: time.Now(), Actor: "user:bench", Data: data}},
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}
