// Package dispatch is Kuzet's domain: calls, incidents, units, assignment,
// statuses and timers. Commands come in, events go out.
//
// How data moves: a command method (CreateIncident, Assign, ...) reads the
// projection under a read lock, validates, and builds the events together
// with the versions of every aggregate it read. It appends them to the
// journal in one atomic append with the client's idempotency key. If another
// writer changed one of those aggregates first, the journal answers with a
// conflict; the service waits until its projection has caught up and
// validates again (so of 50 dispatchers assigning one unit, exactly one
// succeeds and 49 are told the unit is busy). When the append succeeds the
// method waits until the projection has applied its records and returns the
// resulting object, so the caller reads its own write.
//
// The projection (State) is fed only by following the journal, on every
// node, in journal order: records written by other nodes on the same Redis
// arrive the same way as local ones. Listeners registered with OnApplied see
// every record after it is applied (the WebSocket hub, the tracker).
//
// Locking: mu guards the State and the notification channel. Listeners are
// called without mu held, from the one follower goroutine, in order.
package dispatch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kuzet/kuzet/dispatch/journal"
)

// Actor is who issues a command, as established by the web layer.
type Actor struct {
	ID         string // "user:<name>", "device:<id>" or "system"
	Supervisor bool   // may reopen incidents and override
	UnitID     string // non-empty for officers and devices: the only unit they may act for
}

// System is the actor of timers.
var System = Actor{ID: "system", Supervisor: true}

// Meta carries who issues a command and the client's idempotency key.
type Meta struct {
	Actor   Actor
	IdemKey string
}

// Config configures a Service.
type Config struct {
	Journal   journal.Journal
	Catalogue *Catalogue     // default: DefaultCatalogue()
	Prefix    string         // centre code in incident numbers, e.g. "ALA"
	Location  *time.Location // time zone for incident-number years; default Asia/Almaty
	Logger    *slog.Logger
	Now       func() time.Time // default time.Now

	UnacknowledgedAfter time.Duration // default 60 s
	WelfareCheckAfter   time.Duration // default 20 min
	TimerInterval       time.Duration // default 1 s; <0 disables timers

	// Sector, if set, names the patrol sector containing a point ("" if
	// none); incidents created or moved without a sector get it from here.
	Sector func(lat, lon float64) string
}

// Listener is told about each record after it is applied, with the state
// as it is right after that record, under the read lock: it must not block
// and must not keep st.
type Listener func(r journal.Record, st *State)

// Service is the dispatch domain on one node.
type Service struct {
	cfg Config
	j   journal.Journal
	log *slog.Logger
	cat *Catalogue

	mu        sync.RWMutex
	st        *State
	changed   chan struct{}
	listeners []Listener
	ready     bool
	followErr error

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// New validates cfg and returns a stopped Service.
func New(cfg Config) (*Service, error) {
	if cfg.Journal == nil {
		return nil, errors.New("dispatch: no journal")
	}
	if cfg.Catalogue == nil {
		cfg.Catalogue = DefaultCatalogue()
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "ALA"
	}
	if cfg.Location == nil {
		loc, err := time.LoadLocation("Asia/Almaty")
		if err != nil {
			return nil, fmt.Errorf("dispatch: load time zone: %w", err)
		}
		cfg.Location = loc
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UnacknowledgedAfter == 0 {
		cfg.UnacknowledgedAfter = 60 * time.Second
	}
	if cfg.WelfareCheckAfter == 0 {
		cfg.WelfareCheckAfter = 20 * time.Minute
	}
	if cfg.TimerInterval == 0 {
		cfg.TimerInterval = time.Second
	}
	return &Service{
		cfg:     cfg,
		j:       cfg.Journal,
		log:     cfg.Logger.With("component", "dispatch"),
		cat:     cfg.Catalogue,
		st:      newState(cfg.Prefix, cfg.Location),
		changed: make(chan struct{}),
	}, nil
}

// OnApplied registers a listener. Call before Start.
func (s *Service) OnApplied(l Listener) { s.listeners = append(s.listeners, l) }

// Catalogue returns the incident type and disposition catalogue.
func (s *Service) Catalogue() *Catalogue { return s.cat }

// Journal returns the journal the service follows.
func (s *Service) Journal() journal.Journal { return s.j }

// Start replays the journal into the projection, then follows it and runs
// the timers in the background until ctx ends or Close is called.
func (s *Service) Start(ctx context.Context) error {
	begin := time.Now()
	if err := s.replay(ctx); err != nil {
		return fmt.Errorf("dispatch: replay journal: %w", err)
	}
	s.log.Info("journal replayed", "records", s.st.Seq, "took", time.Since(begin).Round(time.Millisecond))
	ctx, s.cancel = context.WithCancel(ctx)
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	s.wg.Add(1)
	go s.follow(ctx)
	if s.cfg.TimerInterval > 0 {
		s.wg.Add(1)
		go s.timers(ctx)
	}
	return nil
}

// replay rebuilds the projection from the whole journal. Reading and
// decoding records runs in its own goroutine, applying them in this one, so
// a restart uses two cores.
func (s *Service) replay(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []journal.Record, 16)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		batch := make([]journal.Record, 0, 512)
		err := s.j.Read(ctx, 0, func(r journal.Record) error {
			batch = append(batch, r)
			if len(batch) == cap(batch) {
				select {
				case batches <- batch:
				case <-ctx.Done():
					return ctx.Err()
				}
				batch = make([]journal.Record, 0, 512)
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			batches <- batch
		}
		readErr <- err
	}()
	for batch := range batches {
		s.mu.Lock()
		for _, r := range batch {
			if err := s.st.apply(r); err != nil {
				s.mu.Unlock()
				cancel()
				for range batches {
				}
				return err
			}
		}
		s.mu.Unlock()
	}
	return <-readErr
}

func (s *Service) follow(ctx context.Context) {
	defer s.wg.Done()
	err := s.j.Follow(ctx, s.st.Seq, func(r journal.Record) error {
		s.mu.Lock()
		err := s.st.apply(r)
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
		if err != nil {
			return err
		}
		// Only this goroutine applies, so the state cannot move between
		// the unlock above and the read lock here.
		s.mu.RLock()
		for _, l := range s.listeners {
			l(r, s.st)
		}
		s.mu.RUnlock()
		return nil
	})
	if err != nil && ctx.Err() == nil {
		s.log.Error("following the journal stopped; this node no longer sees new events", "err", err)
		s.mu.Lock()
		s.ready, s.followErr = false, err
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
}

// Ready reports whether the projection is replayed and following.
func (s *Service) Ready() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.followErr != nil:
		return s.followErr
	case !s.ready:
		return errors.New("dispatch: replaying journal")
	}
	return nil
}

// Close stops following and the timers.
func (s *Service) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

// View runs fn with the projection under the read lock. fn must not keep
// references to the state after it returns, nor block.
func (s *Service) View(fn func(st *State)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fn(s.st)
}

// WaitApplied blocks until the projection has applied record seq: a node
// reading after another node's write waits with this.
func (s *Service) WaitApplied(ctx context.Context, seq uint64) error { return s.waitApplied(ctx, seq) }

// Applied is the sequence number of the last applied record.
func (s *Service) Applied() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.Seq
}

// waitApplied blocks until the projection has applied record seq.
func (s *Service) waitApplied(ctx context.Context, seq uint64) error {
	for {
		s.mu.RLock()
		applied, ch, ferr := s.st.Seq, s.changed, s.followErr
		s.mu.RUnlock()
		if applied >= seq {
			return nil
		}
		if ferr != nil {
			return ferr
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tx collects the events of one command and the versions it relied on.
type tx struct {
	st     *State
	now    time.Time
	actor  Actor
	expect []journal.Expectation
	seen   map[string]bool
	events []journal.Record
}

// touch records that the command relies on agg's current version.
func (t *tx) touch(agg string) {
	if t.seen[agg] {
		return
	}
	t.seen[agg] = true
	t.expect = append(t.expect, journal.Expectation{Aggregate: agg, Version: t.st.Version(agg)})
}

func (t *tx) emit(typ, agg string, data any) {
	t.touch(agg)
	b, err := json.Marshal(data)
	if err != nil {
		panic(fmt.Sprintf("dispatch: encode %s: %v", typ, err)) // only our own payload types reach here
	}
	t.events = append(t.events, journal.Record{Type: typ, Aggregate: agg, Time: t.now, Actor: t.actor.ID, Data: b})
}

// errNoop tells exec that the command has nothing to do (e.g. an alert
// another node already raised).
var errNoop = errors.New("dispatch: nothing to do")

// retryBudget bounds re-validation after version conflicts. Each round at
// least one contender wins, so a command that keeps losing for this long
// means sustained contention on one aggregate; the client then gets ErrBusy
// and retries with its key.
const retryBudget = 5 * time.Second

// exec runs a command: build, append, retry on conflict, wait until applied.
func (s *Service) exec(ctx context.Context, m Meta, fp string, build func(t *tx) error) (journal.Result, error) {
	began := time.Now()
	for attempt := 1; ; attempt++ {
		s.mu.RLock()
		t := &tx{st: s.st, now: s.cfg.Now().UTC(), actor: m.Actor, seen: map[string]bool{}}
		err := build(t)
		s.mu.RUnlock()
		if err != nil {
			if m.IdemKey != "" && !errors.Is(err, errNoop) {
				// A retry of a command that already succeeded fails
				// validation (the unit is now busy - with this very
				// assignment). Answer with the first result instead.
				if res, ok, lerr := s.j.Lookup(ctx, m.IdemKey); lerr == nil && ok {
					return s.duplicate(ctx, res, fp)
				}
			}
			return journal.Result{}, err
		}
		res, err := s.j.Append(ctx, journal.Append{IdemKey: m.IdemKey, Fingerprint: fp, Expect: t.expect, Events: t.events})
		var ce *journal.ConflictError
		if errors.As(err, &ce) && time.Since(began) < retryBudget {
			if err := s.waitApplied(ctx, ce.Head); err != nil {
				return journal.Result{}, err
			}
			if attempt > 2 {
				// Spread contenders out so the same one does not lose every round.
				time.Sleep(time.Duration(rand.IntN(min(attempt, 20)*500)) * time.Microsecond)
			}
			continue
		}
		if errors.As(err, &ce) {
			return journal.Result{}, fmt.Errorf("%w: %v", ErrBusy, err)
		}
		if err != nil {
			return journal.Result{}, err
		}
		if res.Duplicate {
			return s.duplicate(ctx, res, fp)
		}
		return res, s.waitApplied(ctx, res.Last())
	}
}

func (s *Service) duplicate(ctx context.Context, res journal.Result, fp string) (journal.Result, error) {
	if len(res.Records) > 0 && res.Records[0].Print != fp {
		return journal.Result{}, journal.ErrIdempotencyKeyReused
	}
	return res, s.waitApplied(ctx, res.Last())
}

// fingerprint identifies a command's content, so that reusing an
// idempotency key for a different command is detected.
func fingerprint(name string, v any) string {
	b, _ := json.Marshal(v)
	h := sha256.Sum256(append([]byte(name+"\x00"), b...))
	return hex.EncodeToString(h[:12])
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
