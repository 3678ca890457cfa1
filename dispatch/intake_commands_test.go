package dispatch_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/kuzet/kuzet/dispatch"
)

// TestIntakeCommandsReplayAndConcurrency runs the intake commands on both
// journal backends, then a second service replays the journal and must
// hold the same calls, reports and incidents (apply is deterministic).
// Two operators merging the same incident at once: exactly one wins.
func TestIntakeCommandsReplayAndConcurrency(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			open := b.fresh(t)
			j := open()
			svc := start(t, j, nil)
			ctx := context.Background()
			ct := Meta{Actor: Actor{ID: "user:calltaker1"}}
			sup := Meta{Actor: Actor{ID: "user:supervisor1", Supervisor: true}}
			pbx := Meta{Actor: Actor{ID: "pbx"}}
			offer := Meta{Actor: Actor{ID: "pbx"}, IdemKey: "pbx/1/offered"}
			at := time.Date(2026, 11, 25, 17, 24, 0, 0, time.UTC)
			c, err := svc.PBXOffered(ctx, offer, PBXOffer{PBXCallID: "1", CallerNumber: "+77012223344", Line: "1402-1", Queue: Queue1402, At: at})
			if err != nil {
				t.Fatal(err)
			}
			if again, err := svc.PBXOffered(ctx, offer, PBXOffer{PBXCallID: "1", CallerNumber: "+77012223344", Line: "1402-1", Queue: Queue1402, At: at}); err != nil || again.ID != c.ID {
				t.Fatalf("PBX retry: %v %v", again, err)
			}
			if _, err := svc.PBXOffered(ctx, Meta{Actor: pbx.Actor}, PBXOffer{PBXCallID: "1", Queue: Queue102, At: at}); !errors.Is(err, ErrTransition) {
				t.Fatalf("second offered of one PBX call: %v", err)
			}
			if _, err := svc.PBXAnswered(ctx, pbx, "never", "op", at); !errors.Is(err, ErrNotFound) {
				t.Fatalf("unknown PBX call: %v", err)
			}
			if id, ok := svc.CallByNumber("+77012223344"); !ok || id != c.ID {
				t.Fatalf("CallByNumber: %s %v", id, ok)
			}
			if _, _, err := svc.SetCallQueue(ctx, ct, c.ID, QueueChange{Queue: Queue102}); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.UseAML(ctx, ct, c.ID); !errors.Is(err, ErrInvalid) {
				t.Fatalf("use AML without a fix: %v", err)
			}
			if _, err := svc.AttachAML(ctx, pbx, c.ID, AMLLocation{Location: Location{Lat: 43.238, Lon: 76.945, Accuracy: 12}, Method: "GNSS", LocationTime: at, Transport: "sms"}); err != nil {
				t.Fatal(err)
			}
			if c, err = svc.UseAML(ctx, ct, c.ID); err != nil || c.Location.Source != "aml" {
				t.Fatalf("use AML: %+v %v", c, err)
			}
			a, _ := svc.CreateIncident(ctx, ct, NewIncident{Type: "ASSAULT", Location: *c.Location, CallIDs: []string{c.ID}})
			bInc, _ := svc.CreateIncident(ctx, ct, NewIncident{Type: "ASSAULT", Location: Location{Lat: 43.2393, Lon: 76.945}})
			rep, err := svc.ReceiveReport(ctx, ct, NewReport{Channel: "app", Text: "драка", Queue: Queue102, Language: "ru", StatusHash: strings.Repeat("c", 64)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.ReceiveReport(ctx, ct, NewReport{Channel: "app", Text: "x", Queue: Queue102, Language: "ru", StatusHash: strings.Repeat("c", 64)}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("reused status token hash: %v", err)
			}
			if _, err := svc.Merge(ctx, ct, a.ID, MergeRequest{Kind: MergeReport, ID: rep.ID}); err != nil {
				t.Fatal(err)
			}
			if st, _, _ := svc.PublicReportStatus(strings.Repeat("c", 64)); st != "in_progress" {
				t.Fatalf("linked report status %s", st)
			}
			// Two operators merge b into a at the same moment.
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = svc.Merge(ctx, ct, a.ID, MergeRequest{Kind: MergeIncident, ID: bInc.ID})
				}()
			}
			wg.Wait()
			if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), ErrTransition) {
				t.Fatalf("concurrent merges: %v", errs)
			}
			in, _ := svc.Incident(a.ID)
			if _, err := svc.UndoMerge(ctx, ct, a.ID, in.Merges[1].ID, "wrong"); !errors.Is(err, ErrForbidden) {
				t.Fatalf("undo by a call-taker: %v", err)
			}
			if _, err := svc.UndoMerge(ctx, sup, a.ID, in.Merges[1].ID, "different events"); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.UndoMerge(ctx, sup, a.ID, in.Merges[0].ID, "report was elsewhere"); err != nil {
				t.Fatal(err)
			}
			if st, _, _ := svc.PublicReportStatus(strings.Repeat("c", 64)); st != "received" {
				t.Fatalf("unlinked report status %s", st)
			}
			// A restart replays the journal to the same picture.
			snap := func(s *Service) string {
				var b []byte
				s.View(func(st *State) { b, _ = json.Marshal([]any{st.Calls, st.Incidents, st.Reports}) })
				return string(b)
			}
			x, applied := snap(svc), svc.Applied()
			svc.Close()
			j.Close()
			other := start(t, open(), nil)
			if err := other.WaitApplied(ctx, applied); err != nil {
				t.Fatal(err)
			}
			if y := snap(other); x != y {
				t.Fatalf("replayed state differs:\n%s\n%s", x, y)
			}
		})
	}
}
