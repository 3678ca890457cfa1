package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/dispatch/journal"
	"github.com/kuzet/kuzet/dispatch/journal/filejournal"
	"github.com/kuzet/kuzet/dispatch/journal/redisjournal"
	"github.com/kuzet/kuzet/internal/redistest"
)

// backends opens a fresh journal of each kind; open may be called again to
// get a second journal on the same storage (a restart, or a second node).
var backends = []struct {
	name  string
	fresh func(t *testing.T) func() journal.Journal
}{
	{"embedded", func(t *testing.T) func() journal.Journal {
		dir := t.TempDir()
		return func() journal.Journal {
			j, err := filejournal.Open(filejournal.Config{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			return j
		}
	}},
	{"redis", func(t *testing.T) func() journal.Journal {
		srv := redistest.Start(t)
		return func() journal.Journal {
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
			t.Cleanup(func() { rdb.Close() })
			j, err := redisjournal.Open(context.Background(), redisjournal.Config{Client: rdb, BlockFor: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return j
		}
	}},
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func start(t *testing.T, j journal.Journal, now func() time.Time) *dispatch.Service {
	t.Helper()
	s, err := dispatch.New(dispatch.Config{Journal: j, Now: now, TimerInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); j.Close() })
	return s
}

var (
	dispatcher = dispatch.Meta{Actor: dispatch.Actor{ID: "user:aigerim"}}
	supervisor = dispatch.Meta{Actor: dispatch.Actor{ID: "user:serik", Supervisor: true}}
	almaty     = dispatch.Location{Lat: 43.2383, Lon: 76.9453, Address: "Абай даңғылы, 10"}
)

var testCtx, _ = context.WithDeadline(context.Background(), time.Now().Add(10*time.Minute))

func ctx() context.Context { return testCtx }

func unitOnShift(t *testing.T, s *dispatch.Service, id string) {
	t.Helper()
	if _, err := s.RegisterUnit(ctx(), supervisor, dispatch.UnitSpec{ID: id, CallSign: "Беркут-" + id, Agency: "police", Kind: "car", Capabilities: []string{"armed"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetShift(ctx(), supervisor, id, true); err != nil {
		t.Fatal(err)
	}
}

func TestLifecycle(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := start(t, b.fresh(t)(), time.Now)
			call, err := s.CreateCall(ctx(), dispatcher, dispatch.NewCall{Channel: dispatch.ChannelPhone, CallerNumber: "+77011234567", Language: "kk"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.AnswerCall(ctx(), dispatcher, call.ID); err != nil {
				t.Fatal(err)
			}
			in, err := s.CreateIncident(ctx(), dispatcher, dispatch.NewIncident{Type: "ASSAULT", Location: almaty, CallIDs: []string{call.ID}, Queue: true})
			if err != nil {
				t.Fatal(err)
			}
			year := time.Now().In(mustLoc("Asia/Almaty")).Year()
			if in.Number != fmt.Sprintf("ALA-%d-000001", year) || in.Priority != 1 || in.Status != dispatch.IncidentQueued {
				t.Fatalf("incident = %+v", in)
			}
			if c, _ := s.Call(call.ID); c.IncidentID != in.ID {
				t.Fatalf("call not linked: %+v", c)
			}
			unitOnShift(t, s, "P101")
			in, err = s.Assign(ctx(), dispatcher, in.ID, dispatch.AssignRequest{UnitIDs: []string{"P101"}})
			if err != nil {
				t.Fatal(err)
			}
			if in.Status != dispatch.IncidentDispatched || len(in.ActiveUnits()) != 1 {
				t.Fatalf("after assign: %+v", in)
			}
			officer := dispatch.Meta{Actor: dispatch.Actor{ID: "device:tab-1", UnitID: "P101"}}
			if _, err := s.SetUnitStatus(ctx(), officer, "P101", dispatch.UnitStatusRequest{Status: dispatch.UnitEnRoute}); err != nil {
				t.Fatal(err)
			}
			in, _ = s.Incident(in.ID)
			if in.Status != dispatch.IncidentEnRoute || in.Assignments[0].AcknowledgedAt == nil {
				t.Fatalf("en route did not move incident or acknowledge: %+v", in)
			}
			if _, err := s.SetUnitStatus(ctx(), officer, "P101", dispatch.UnitStatusRequest{Status: dispatch.UnitOnScene}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AddNote(ctx(), officer, in.ID, "Жәбірленуші табылды, жедел жәрдем шақырылды"); err != nil {
				t.Fatal(err)
			}
			// Officer of another unit: forbidden.
			other := dispatch.Meta{Actor: dispatch.Actor{ID: "device:tab-2", UnitID: "P102"}}
			if _, err := s.SetUnitStatus(ctx(), other, "P101", dispatch.UnitStatusRequest{Status: dispatch.UnitAvailable}); !errors.Is(err, dispatch.ErrForbidden) {
				t.Fatalf("other unit's terminal: %v", err)
			}
			if _, err := s.SetIncidentStatus(ctx(), dispatcher, in.ID, dispatch.StatusChange{Status: dispatch.IncidentClosed}); !errors.Is(err, dispatch.ErrInvalid) {
				t.Fatalf("close without disposition: %v", err)
			}
			in, err = s.SetIncidentStatus(ctx(), dispatcher, in.ID, dispatch.StatusChange{Status: dispatch.IncidentClosed, Disposition: "ARREST"})
			if err != nil {
				t.Fatal(err)
			}
			if u, _ := s.Unit("P101"); u.Status != dispatch.UnitAvailable || u.IncidentID != "" {
				t.Fatalf("closing did not free the unit: %+v", u)
			}
			if _, err := s.SetIncidentStatus(ctx(), dispatcher, in.ID, dispatch.StatusChange{Status: dispatch.IncidentQueued, Reason: "жаңа мәлімет"}); !errors.Is(err, dispatch.ErrForbidden) {
				t.Fatalf("reopen by dispatcher: %v", err)
			}
			if in, err = s.SetIncidentStatus(ctx(), supervisor, in.ID, dispatch.StatusChange{Status: dispatch.IncidentQueued, Reason: "жаңа мәлімет"}); err != nil || in.Status != dispatch.IncidentQueued {
				t.Fatalf("reopen by supervisor: %v", err)
			}
		})
	}
}

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

func TestIllegalCommandsChangeNothing(t *testing.T) {
	s := start(t, backends[0].fresh(t)(), time.Now)
	unitOnShift(t, s, "P1")
	in, _ := s.CreateIncident(ctx(), dispatcher, dispatch.NewIncident{Type: "THEFT", Location: almaty})
	var before uint64
	s.View(func(st *dispatch.State) { before = st.Seq })
	cases := []struct {
		name string
		run  func() error
		want error
	}{
		{"unknown type", func() error {
			_, err := s.CreateIncident(ctx(), dispatcher, dispatch.NewIncident{Type: "NOPE", Location: almaty})
			return err
		}, dispatch.ErrInvalid},
		{"latitude out of range", func() error {
			_, err := s.CreateIncident(ctx(), dispatcher, dispatch.NewIncident{Type: "THEFT", Location: dispatch.Location{Lat: 91, Lon: 76}})
			return err
		}, dispatch.ErrInvalid},
		{"priority out of range", func() error {
			_, err := s.CreateIncident(ctx(), dispatcher, dispatch.NewIncident{Type: "THEFT", Priority: 9, Location: almaty})
			return err
		}, dispatch.ErrInvalid},
		{"unknown unit", func() error {
			_, err := s.Assign(ctx(), dispatcher, in.ID, dispatch.AssignRequest{UnitIDs: []string{"ghost"}})
			return err
		}, dispatch.ErrNotFound},
		{"unknown incident", func() error {
			_, err := s.Assign(ctx(), dispatcher, "nope", dispatch.AssignRequest{UnitIDs: []string{"P1"}})
			return err
		}, dispatch.ErrNotFound},
		{"new to on_scene by hand", func() error {
			_, err := s.SetIncidentStatus(ctx(), dispatcher, in.ID, dispatch.StatusChange{Status: dispatch.IncidentOnScene})
			return err
		}, dispatch.ErrTransition},
		{"available to on_scene", func() error {
			_, err := s.SetUnitStatus(ctx(), dispatcher, "P1", dispatch.UnitStatusRequest{Status: dispatch.UnitOnScene})
			return err
		}, dispatch.ErrTransition},
		{"unit dispatched by status", func() error {
			_, err := s.SetUnitStatus(ctx(), dispatcher, "P1", dispatch.UnitStatusRequest{Status: dispatch.UnitDispatched})
			return err
		}, dispatch.ErrTransition},
		{"bad unit id", func() error {
			_, err := s.RegisterUnit(ctx(), supervisor, dispatch.UnitSpec{ID: "a b", CallSign: "x", Agency: "police", Kind: "car"})
			return err
		}, dispatch.ErrInvalid},
		{"bad agency", func() error {
			_, err := s.RegisterUnit(ctx(), supervisor, dispatch.UnitSpec{ID: "x", CallSign: "x", Agency: "army", Kind: "car"})
			return err
		}, dispatch.ErrInvalid},
	}
	for _, c := range cases {
		if err := c.run(); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	var after uint64
	s.View(func(st *dispatch.State) { after = st.Seq })
	if after != before {
		t.Fatalf("rejected commands appended %d records", after-before)
	}
}

func TestConcurrentAssignmentOneWins(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			open := b.fresh(t)
			s1 := start(t, open(), time.Now)
			services := []*dispatch.Service{s1}
			if b.name == "redis" {
				services = append(services, start(t, open(), time.Now)) // a second node
			}
			unitOnShift(t, s1, "P7")
			ids := make([]string, 50)
			for i := range ids {
				in, err := s1.CreateIncident(ctx(), dispatcher, dispatch.NewIncident{Type: "ROBBERY", Location: almaty})
				if err != nil {
					t.Fatal(err)
				}
				ids[i] = in.ID
			}
			for _, s := range services {
				if err := s.WaitApplied(ctx(), s1.Applied()); err != nil {
					t.Fatal(err)
				}
			}
			var wins, busy atomic.Int32
			var wg sync.WaitGroup
			for i := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := services[i%len(services)]
					m := dispatch.Meta{Actor: dispatcher.Actor, IdemKey: fmt.Sprintf("assign-%d", i)}
					_, err := s.Assign(ctx(), m, ids[i], dispatch.AssignRequest{UnitIDs: []string{"P7"}})
					switch {
					case err == nil:
						wins.Add(1)
					case errors.Is(err, dispatch.ErrUnitBusy):
						busy.Add(1)
					default:
						t.Errorf("assign %d: %v", i, err)
					}
				}()
			}
			wg.Wait()
			if wins.Load() != 1 || busy.Load() != 49 {
				t.Fatalf("wins %d busy %d, want 1 and 49", wins.Load(), busy.Load())
			}
			for _, s := range services {
				var dispatched int
				s.View(func(st *dispatch.State) {
					for _, in := range st.Incidents {
						dispatched += len(in.ActiveUnits())
					}
				})
				if dispatched != 1 {
					t.Fatalf("a node sees %d active assignments", dispatched)
				}
			}
		})
	}
}

func TestIdempotentRetryReturnsSameIncident(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := start(t, b.fresh(t)(), time.Now)
			m := dispatch.Meta{Actor: dispatcher.Actor, IdemKey: "0192f7c4-6e6b-7cc1-9a55-1c4d2f0a7b11"}
			n := dispatch.NewIncident{Type: "THEFT", Location: almaty}
			a, err := s.CreateIncident(ctx(), m, n)
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.CreateIncident(ctx(), m, n)
			if err != nil || b.ID != a.ID || b.Number != a.Number {
				t.Fatalf("retry gave %+v, %v; want %s", b, err, a.ID)
			}
			n.Narrative = "different"
			if _, err := s.CreateIncident(ctx(), m, n); !errors.Is(err, journal.ErrIdempotencyKeyReused) {
				t.Fatalf("reuse: %v", err)
			}
			if got := len(s.Incidents(dispatch.IncidentFilter{})); got != 1 {
				t.Fatalf("%d incidents", got)
			}
			// A retried assignment answers with the first result, not "busy".
			unitOnShift(t, s, "P1")
			am := dispatch.Meta{Actor: dispatcher.Actor, IdemKey: "assign-once"}
			if _, err := s.Assign(ctx(), am, a.ID, dispatch.AssignRequest{UnitIDs: []string{"P1"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Assign(ctx(), am, a.ID, dispatch.AssignRequest{UnitIDs: []string{"P1"}}); err != nil {
				t.Fatalf("retried assignment: %v", err)
			}
		})
	}
}

func TestReplayRebuildsSameState(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			open := b.fresh(t)
			j := open()
			s, _ := dispatch.New(dispatch.Config{Journal: j, TimerInterval: -1})
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			unitOnShift(t, s, "P1")
			var numbers []string
			for range 5 {
				in, err := s.CreateIncident(ctx(), dispatcher, dispatch.NewIncident{Type: "NOISE", Location: almaty})
				if err != nil {
					t.Fatal(err)
				}
				numbers = append(numbers, in.Number)
			}
			s.Assign(ctx(), dispatcher, s.Incidents(dispatch.IncidentFilter{})[0].ID, dispatch.AssignRequest{UnitIDs: []string{"P1"}})
			s.Close()
			j.Close()

			s2 := start(t, open(), time.Now)
			for _, n := range numbers {
				if _, err := s2.Incident(n); err != nil {
					t.Fatalf("after replay: %v", err)
				}
			}
			if u, _ := s2.Unit("P1"); u.Status != dispatch.UnitDispatched {
				t.Fatalf("unit after replay: %+v", u)
			}
		})
	}
}

func TestTimersRaiseOnceAndClear(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	s := start(t, backends[0].fresh(t)(), clk.Now)
	unitOnShift(t, s, "P1")
	in, _ := s.CreateIncident(ctx(), dispatcher, dispatch.NewIncident{Type: "SHOTS", Location: almaty, Queue: true})
	s.CheckTimers(ctx())
	if n := len(s.Alerts()); n != 0 {
		t.Fatalf("%d alerts before the target", n)
	}
	clk.Add(61 * time.Second) // priority 1 target is 60 s
	s.CheckTimers(ctx())
	s.CheckTimers(ctx())
	alerts := s.Alerts()
	if len(alerts) != 1 || alerts[0].Kind != dispatch.AlertUnassigned {
		t.Fatalf("alerts = %+v", alerts)
	}
	var raised int
	s.View(func(st *dispatch.State) { raised = int(st.Alerts[alerts[0].ID].Version) })
	if raised != 1 {
		t.Fatalf("alert raised %d times", raised)
	}
	s.Assign(ctx(), dispatcher, in.ID, dispatch.AssignRequest{UnitIDs: []string{"P1"}})
	s.CheckTimers(ctx())
	if n := len(s.Alerts()); n != 0 {
		t.Fatalf("alert not cleared after assignment: %+v", s.Alerts())
	}
	clk.Add(61 * time.Second) // nobody acknowledged
	s.CheckTimers(ctx())
	if a := s.Alerts(); len(a) != 1 || a[0].Kind != dispatch.AlertUnacknowledged {
		t.Fatalf("alerts = %+v", a)
	}
	s.Acknowledge(ctx(), dispatcher, in.ID, "P1")
	s.SetUnitStatus(ctx(), dispatcher, "P1", dispatch.UnitStatusRequest{Status: dispatch.UnitOnScene})
	clk.Add(21 * time.Minute)
	s.CheckTimers(ctx())
	if a := s.Alerts(); len(a) != 1 || a[0].Kind != dispatch.AlertWelfareCheck {
		t.Fatalf("alerts = %+v", a)
	}
}

func TestContendedIncidentAllNotesLand(t *testing.T) {
	s := start(t, backends[0].fresh(t)(), time.Now)
	in, _ := s.CreateIncident(ctx(), dispatcher, dispatch.NewIncident{Type: "THEFT", Location: almaty})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if _, err := s.AddNote(ctx(), dispatcher, in.ID, fmt.Sprintf("%d-%d", w, i)); err != nil {
					t.Errorf("note: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if got, _ := s.Incident(in.ID); len(got.Notes) != 160 {
		t.Fatalf("%d notes, want 160", len(got.Notes))
	}
}
