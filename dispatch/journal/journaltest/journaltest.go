// Package journaltest is the conformance suite every journal backend must
// pass. The embedded and the Redis backend run the same tests, so that the
// behaviour a dispatcher sees does not depend on the deployment.
package journaltest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kuzet/kuzet/dispatch/journal"
)

// Backend opens journals over one storage for one test.
type Backend struct {
	// Open opens (or reopens) the journal on the test's storage. Each test
	// gets fresh storage; calling Open again within a test reopens it.
	Fresh func(t *testing.T) (open func() journal.Journal)
	// Shared is true when two journals may be open on the same storage at
	// once (several nodes on one Redis).
	Shared bool
}

// Run runs the suite.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func() journal.Journal)
	}{
		{"AppendAssignsSequenceVersionAndChain", testAppend},
		{"StaleVersionConflictsAndAppendsNothing", testConflict},
		{"IdempotencyKeyReturnsFirstResult", testIdempotency},
		{"InvalidAppendRejected", testInvalid},
		{"ConcurrentClaimsExactlyOneWins", testClaimRace},
		{"ConcurrentAppendsKeepChain", testConcurrentAppends},
		{"FollowDeliversNewRecordsInOrder", testFollow},
		{"ReopenKeepsEverything", testReopen},
	}
	if b.Shared {
		tests = append(tests, struct {
			name string
			fn   func(t *testing.T, open func() journal.Journal)
		}{"TwoWritersOneChain", testTwoWriters})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			open := b.Fresh(t)
			tc.fn(t, open)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func event(typ, agg string, data any) journal.Record {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	return journal.Record{Type: typ, Aggregate: agg, Time: time.Now(), Actor: "user:test", Data: b}
}

func one(typ, agg string, version uint64, idem string) journal.Append {
	return journal.Append{
		IdemKey: idem, Fingerprint: "fp-" + idem,
		Expect: []journal.Expectation{{Aggregate: agg, Version: version}},
		Events: []journal.Record{event(typ, agg, map[string]string{"k": "v"})},
	}
}

func readAll(t *testing.T, j journal.Journal) []journal.Record {
	t.Helper()
	var out []journal.Record
	if err := j.Read(ctx(t), 0, func(r journal.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatalf("read: %v", err)
	}
	return out
}

func closeJ(t *testing.T, j journal.Journal) {
	if err := j.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

func testAppend(t *testing.T, open func() journal.Journal) {
	j := open()
	defer closeJ(t, j)
	a := journal.Append{
		IdemKey: "k1", Fingerprint: "f1",
		Expect: []journal.Expectation{{Aggregate: "incident:1", Version: 0}, {Aggregate: "unit:7", Version: 0}},
		Events: []journal.Record{
			event("incident.created", "incident:1", map[string]int{"p": 1}),
			event("unit.registered", "unit:7", map[string]string{"cs": "A-7"}),
			event("incident.note_added", "incident:1", map[string]string{"text": "қару бар"}),
		},
	}
	res, err := j.Append(ctx(t), a)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if res.Duplicate || len(res.Records) != 3 {
		t.Fatalf("result = %+v, want 3 new records", res)
	}
	wantVer := []uint64{1, 1, 2}
	for i, r := range res.Records {
		if r.Seq != uint64(i+1) || r.Version != wantVer[i] {
			t.Errorf("record %d: seq %d version %d, want %d %d", i, r.Seq, r.Version, i+1, wantVer[i])
		}
		if r.Hash == "" || len(r.Body) == 0 {
			t.Errorf("record %d not sealed", i)
		}
	}
	if res.Records[1].Prev != res.Records[0].Hash || res.Records[0].Prev != "" {
		t.Errorf("chain links wrong")
	}
	if head, err := j.Head(ctx(t)); err != nil || head != 3 {
		t.Errorf("head = %d, %v; want 3", head, err)
	}
	got := readAll(t, j)
	if len(got) != 3 || got[2].Type != "incident.note_added" || string(got[2].Data) != `{"text":"қару бар"}` {
		t.Fatalf("read back %+v", got)
	}
	if n, err := journal.Verify(ctx(t), j); err != nil || n != 3 {
		t.Fatalf("verify = %d, %v", n, err)
	}
	// Next append must expect the new versions.
	if _, err := j.Append(ctx(t), one("incident.updated", "incident:1", 2, "")); err != nil {
		t.Fatalf("append at version 2: %v", err)
	}
}

func testConflict(t *testing.T, open func() journal.Journal) {
	j := open()
	defer closeJ(t, j)
	if _, err := j.Append(ctx(t), one("unit.registered", "unit:1", 0, "")); err != nil {
		t.Fatal(err)
	}
	_, err := j.Append(ctx(t), journal.Append{
		Expect: []journal.Expectation{{Aggregate: "unit:1", Version: 0}, {Aggregate: "incident:9", Version: 0}},
		Events: []journal.Record{event("incident.created", "incident:9", 1), event("assignment.created", "unit:1", 1)},
	})
	var ce *journal.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, journal.ErrConflict) {
		t.Fatalf("err = %v, want ConflictError", err)
	}
	if ce.Aggregate != "unit:1" || ce.Actual != 1 || ce.Expected != 0 {
		t.Errorf("conflict = %+v", ce)
	}
	if got := readAll(t, j); len(got) != 1 {
		t.Fatalf("conflicting append stored %d records", len(got)-1)
	}
}

func testIdempotency(t *testing.T, open func() journal.Journal) {
	j := open()
	defer closeJ(t, j)
	first, err := j.Append(ctx(t), one("incident.created", "incident:1", 0, "018f-key"))
	if err != nil {
		t.Fatal(err)
	}
	// Same key, same command, even with a stale version: the first result.
	again, err := j.Append(ctx(t), one("incident.created", "incident:1", 0, "018f-key"))
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !again.Duplicate || len(again.Records) != 1 || again.Records[0].Seq != first.Records[0].Seq || again.Records[0].Hash != first.Records[0].Hash {
		t.Fatalf("retry = %+v, want duplicate of %+v", again, first)
	}
	res, ok, err := j.Lookup(ctx(t), "018f-key")
	if err != nil || !ok || res.Records[0].Seq != 1 {
		t.Fatalf("lookup = %+v %v %v", res, ok, err)
	}
	if _, ok, err := j.Lookup(ctx(t), "never-used"); ok || err != nil {
		t.Fatalf("lookup of unknown key = %v %v", ok, err)
	}
	reuse := one("incident.created", "incident:2", 0, "018f-key")
	reuse.Fingerprint = "another command"
	if _, err := j.Append(ctx(t), reuse); !errors.Is(err, journal.ErrIdempotencyKeyReused) {
		t.Fatalf("reuse err = %v", err)
	}
	// Duplicates inside one concurrent burst: exactly one stored.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := j.Append(ctx(t), one("incident.created", "incident:3", 0, "burst")); err != nil {
				t.Errorf("burst: %v", err)
			}
		}()
	}
	wg.Wait()
	if got := readAll(t, j); len(got) != 2 {
		t.Fatalf("stored %d records, want 2", len(got))
	}
}

func testInvalid(t *testing.T, open func() journal.Journal) {
	j := open()
	defer closeJ(t, j)
	bad := []journal.Append{
		{},
		{Events: []journal.Record{event("x", "incident:1", 1)}},
		{Expect: []journal.Expectation{{Aggregate: "a", Version: 0}, {Aggregate: "a", Version: 0}}, Events: []journal.Record{event("x", "a", 1)}},
	}
	for i, a := range bad {
		if _, err := j.Append(ctx(t), a); !errors.Is(err, journal.ErrInvalid) {
			t.Errorf("case %d: err = %v, want ErrInvalid", i, err)
		}
	}
	if got := readAll(t, j); len(got) != 0 {
		t.Fatalf("invalid appends stored %d records", len(got))
	}
}

func testClaimRace(t *testing.T, open func() journal.Journal) {
	j := open()
	defer closeJ(t, j)
	if _, err := j.Append(ctx(t), one("unit.registered", "unit:42", 0, "")); err != nil {
		t.Fatal(err)
	}
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inc := fmt.Sprintf("incident:%d", i)
			_, err := j.Append(ctx(t), journal.Append{
				IdemKey: fmt.Sprintf("claim-%d", i),
				Expect:  []journal.Expectation{{Aggregate: "unit:42", Version: 1}, {Aggregate: inc, Version: 0}},
				Events:  []journal.Record{event("incident.created", inc, 1), event("assignment.created", "unit:42", inc)},
			})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, journal.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("claim %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != 49 {
		t.Fatalf("wins %d conflicts %d, want 1 and 49", wins.Load(), conflicts.Load())
	}
	if got := readAll(t, j); len(got) != 3 {
		t.Fatalf("stored %d records, want 3", len(got))
	}
}

func testConcurrentAppends(t *testing.T, open func() journal.Journal) {
	j := open()
	defer closeJ(t, j)
	const workers, each = 16, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			agg := fmt.Sprintf("incident:%d", w)
			for v := range each {
				if _, err := j.Append(ctx(t), one("incident.updated", agg, uint64(v), fmt.Sprintf("%d-%d", w, v))); err != nil {
					t.Errorf("worker %d append %d: %v", w, v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n, err := journal.Verify(ctx(t), j); err != nil || n != workers*each {
		t.Fatalf("verify = %d, %v; want %d", n, err, workers*each)
	}
}

func testFollow(t *testing.T, open func() journal.Journal) {
	j := open()
	defer closeJ(t, j)
	if _, err := j.Append(ctx(t), one("a", "x:1", 0, "")); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(ctx(t))
	got := make(chan uint64, 100)
	done := make(chan error, 1)
	go func() {
		done <- j.Follow(c, 0, func(r journal.Record) error { got <- r.Seq; return nil })
	}()
	for v := uint64(1); v < 20; v++ {
		if _, err := j.Append(ctx(t), one("a", "x:1", v, "")); err != nil {
			t.Fatal(err)
		}
	}
	for want := uint64(1); want <= 20; want++ {
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("followed %d, want %d", s, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("record %d never arrived", want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("follow ended with %v", err)
	}
}

func testReopen(t *testing.T, open func() journal.Journal) {
	j := open()
	if _, err := j.Append(ctx(t), one("a", "x:1", 0, "idem-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx(t), one("a", "x:1", 1, "idem-2")); err != nil {
		t.Fatal(err)
	}
	closeJ(t, j)
	j = open()
	defer closeJ(t, j)
	if head, _ := j.Head(ctx(t)); head != 2 {
		t.Fatalf("head after reopen = %d", head)
	}
	if _, err := j.Append(ctx(t), one("a", "x:1", 1, "")); !errors.Is(err, journal.ErrConflict) {
		t.Fatalf("stale version after reopen: %v", err)
	}
	res, err := j.Append(ctx(t), one("a", "x:1", 0, "idem-1"))
	if err != nil || !res.Duplicate || res.Records[0].Seq != 1 {
		t.Fatalf("retry after reopen = %+v, %v", res, err)
	}
	if _, err := j.Append(ctx(t), one("a", "x:1", 2, "")); err != nil {
		t.Fatalf("append after reopen: %v", err)
	}
	if n, err := journal.Verify(ctx(t), j); err != nil || n != 3 {
		t.Fatalf("verify = %d, %v", n, err)
	}
}

func testTwoWriters(t *testing.T, open func() journal.Journal) {
	a, b := open(), open()
	defer closeJ(t, a)
	defer closeJ(t, b)
	if _, err := a.Append(ctx(t), one("unit.registered", "unit:1", 0, "")); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := a
			if i%2 == 1 {
				j = b
			}
			// Everyone appends to their own aggregate: all succeed, chain holds.
			if _, err := j.Append(ctx(t), one("x", fmt.Sprintf("incident:%d", i), 0, "")); err != nil {
				t.Errorf("append %d: %v", i, err)
			}
			// And all race for one unit: exactly one wins.
			_, err := j.Append(ctx(t), one("assignment.created", "unit:1", 1, fmt.Sprintf("claim-%d", i)))
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, journal.ErrConflict) {
				t.Errorf("claim %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d claims won across two writers, want 1", wins.Load())
	}
	if n, err := journal.Verify(ctx(t), b); err != nil || n != 42 {
		t.Fatalf("verify = %d, %v; want 42", n, err)
	}
}
