package dispatch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/dispatch/journal"
	"github.com/kuzet/kuzet/dispatch/journal/filejournal"
)

// replayJournal builds (once per machine, cached in the temp directory) an
// embedded journal of n realistic events: incidents created, notes, unit
// status changes and assignments, in the proportions of a busy centre.
func replayJournal(b *testing.B, n int) string {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("kuzet-replay-%d", n))
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		return dir
	}
	os.RemoveAll(dir)
	j, err := filejournal.Open(filejournal.Config{Dir: dir, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	const units = 500
	var wg sync.WaitGroup
	per := n / 8
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			ver := map[string]uint64{}
			emit := func(typ, agg string, data any) {
				d, _ := json.Marshal(data)
				_, err := j.Append(ctx, journal.Append{
					Expect: []journal.Expectation{{Aggregate: agg, Version: ver[agg]}},
					Events: []journal.Record{{Type: typ, Aggregate: agg, Time: time.Now(), Actor: "user:bench", Data: d}},
				})
				if err != nil {
					panic(err)
				}
				ver[agg]++
			}
			for u := range units / 8 {
				id := fmt.Sprintf("U%d-%d", w, u)
				emit(dispatch.EvUnitRegistered, "unit:"+id, dispatch.UnitRegistered{UnitID: id, CallSign: "Беркут-" + id, Agency: "police", Kind: "car", Capabilities: []string{"armed"}})
			}
			var inc string
			for i := 10 * (units/80 + 1); i < per; i++ {
				switch i % 10 {
				case 0:
					inc = fmt.Sprintf("inc-%d-%d", w, i)
					emit(dispatch.EvIncidentCreated, "incident:"+inc, dispatch.IncidentCreated{IncidentID: inc, Type: "THEFT", Priority: 3, Status: dispatch.IncidentQueued,
						Location: dispatch.Location{Lat: 43.25, Lon: 76.95, Address: "Абай даңғылы, 10"}, Narrative: "Дүкеннен ұрлық, күдікті қара курткада"})
				case 1:
					emit(dispatch.EvAssigned, "incident:"+inc, dispatch.Assigned{IncidentID: inc, UnitID: fmt.Sprintf("U%d-%d", w, i%(units/8))})
				case 2, 3, 4, 5, 6:
					emit(dispatch.EvIncidentNote, "incident:"+inc, dispatch.NoteAdded{IncidentID: inc, NoteID: fmt.Sprint(i), Text: "Экипаж орнында, куәгерлерден жауап алынуда"})
				default:
					id := fmt.Sprintf("U%d-%d", w, i%(units/8))
					emit(dispatch.EvUnitStatus, "unit:"+id, dispatch.UnitStatusChanged{UnitID: id, From: dispatch.UnitDispatched, To: dispatch.UnitEnRoute, IncidentID: inc})
				}
			}
		}()
	}
	wg.Wait()
	j.Close()
	os.WriteFile(filepath.Join(dir, "complete"), nil, 0o644)
	return dir
}

// BenchmarkReplay1M measures a restart: opening the embedded journal
// (checksums and hash chain of every record) and rebuilding the projection
// from 1,000,000 events. Target: ≤ 10 s.
func BenchmarkReplay1M(b *testing.B) {
	dir := replayJournal(b, 1_000_000)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		j, err := filejournal.Open(filejournal.Config{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		opened := time.Since(start)
		s, err := dispatch.New(dispatch.Config{Journal: j, TimerInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		total := time.Since(start)
		if s.Applied() < 1_000_000-1000 {
			b.Fatalf("applied %d", s.Applied())
		}
		b.ReportMetric(opened.Seconds(), "open-s")
		b.ReportMetric(total.Seconds(), "restart-s")
		s.Close()
		j.Close()
	}
}
