// Package journal defines Kuzet's durable event journal: the ordered,
// hash-chained log of every change to calls, incidents, units and
// assignments (durability class A in docs/architecture.md).
//
// A command becomes one Append: a set of events, the aggregate versions the
// command was validated against, and the client's idempotency key. A backend
// appends all the events or none, atomically:
//
//   - every aggregate an event touches must be listed in Expect with the
//     version the caller saw; if another writer got there first, Append
//     fails with a *ConflictError and the caller re-validates;
//   - an idempotency key that was already used returns the records the first
//     attempt appended (Result.Duplicate), so a client that lost the answer
//     can retry without creating a second incident;
//   - the journal assigns each record its global sequence number, the
//     aggregate's new version and the hash chain link, and returns only
//     after the records are durable.
//
// Each record's Body is the exact JSON that is hashed and stored;
// Hash = SHA-256(previous record's hash ‖ Body). Verify walks the chain.
//
// Two backends implement this contract: filejournal (embedded, default) and
// redisjournal (Redis Stream + Lua). journaltest is the conformance suite
// both must pass.
package journal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Record is one event in the journal.
type Record struct {
	Seq       uint64          `json:"seq"`            // global position, from 1, no gaps
	Type      string          `json:"type"`           // e.g. "incident.created"
	Aggregate string          `json:"agg"`            // e.g. "incident:01J..."
	Version   uint64          `json:"ver"`            // the aggregate's version after this event
	Time      time.Time       `json:"time"`           // UTC, set by the writer that validated the command
	Actor     string          `json:"actor"`          // "user:<name>", "device:<id>" or "system"
	IdemKey   string          `json:"idem,omitempty"` // the client's idempotency key
	Print     string          `json:"fp,omitempty"`   // fingerprint of the command, to detect key reuse
	Prev      string          `json:"prev"`           // hex SHA-256 of the previous record ("" for the first)
	Data      json.RawMessage `json:"data"`           // the typed payload

	Body []byte `json:"-"` // exact stored JSON of the fields above
	Hash string `json:"-"` // hex SHA-256(Prev ‖ Body)
}

// Expectation is an aggregate version a command was validated against.
// Version 0 means "the aggregate must not exist yet".
type Expectation struct {
	Aggregate string
	Version   uint64
}

// Append is one command's worth of events, appended atomically.
type Append struct {
	IdemKey     string        // optional; empty disables duplicate detection
	Fingerprint string        // optional; hash of the command's content
	Expect      []Expectation // must cover every aggregate in Events
	Events      []Record      // Type, Aggregate, Time, Actor and Data set by the caller
}

// Result is what Append stored (or had stored before, when Duplicate).
type Result struct {
	Records   []Record
	Duplicate bool
}

// Last is the sequence number of the last record in the result.
func (r Result) Last() uint64 {
	if len(r.Records) == 0 {
		return 0
	}
	return r.Records[len(r.Records)-1].Seq
}

// Journal is implemented by every backend.
type Journal interface {
	// Append validates expectations and the idempotency key and appends
	// the events durably, or returns an error and appends nothing.
	Append(ctx context.Context, a Append) (Result, error)
	// Lookup returns the records a previous Append with this idempotency key
	// stored, or ok=false.
	Lookup(ctx context.Context, idemKey string) (res Result, ok bool, err error)
	// Read calls fn for every record with Seq > after, in order, up to the
	// head at the time of the call.
	Read(ctx context.Context, after uint64, fn func(Record) error) error
	// Follow is Read followed by waiting for new records, until ctx ends or
	// fn returns an error. Records written by other nodes arrive here too.
	Follow(ctx context.Context, after uint64, fn func(Record) error) error
	// Head is the sequence number of the last durable record.
	Head(ctx context.Context) (uint64, error)
	Close() error
}

// Chain returns the hash link of a record body after prev.
func Chain(prev string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// Seal fills Seq, Version, Prev, IdemKey, Print, Body and Hash of r, given the
// chain head it follows. Time is normalised to UTC.
func Seal(r *Record, seq, version uint64, prev, idem, print string) error {
	r.Seq, r.Version, r.Prev, r.IdemKey, r.Print = seq, version, prev, idem, print
	r.Time = r.Time.UTC()
	if len(r.Data) == 0 {
		r.Data = json.RawMessage("{}")
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("journal: encode record %s: %w", r.Type, err)
	}
	r.Body = body
	r.Hash = Chain(prev, body)
	return nil
}

// Decode parses a stored body and checks it against its stored hash.
func Decode(body []byte, hash string) (Record, error) {
	var r Record
	if err := json.Unmarshal(body, &r); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	r.Body, r.Hash = body, hash
	return r, nil
}

// Validate checks an Append before a backend looks at its state.
func (a *Append) Validate() error {
	if len(a.Events) == 0 {
		return fmt.Errorf("%w: no events", ErrInvalid)
	}
	if len(a.IdemKey) > 200 {
		return fmt.Errorf("%w: idempotency key longer than 200 bytes", ErrInvalid)
	}
	expected := make(map[string]bool, len(a.Expect))
	for _, e := range a.Expect {
		if e.Aggregate == "" {
			return fmt.Errorf("%w: expectation without aggregate", ErrInvalid)
		}
		if expected[e.Aggregate] {
			return fmt.Errorf("%w: aggregate %s expected twice", ErrInvalid, e.Aggregate)
		}
		expected[e.Aggregate] = true
	}
	for _, ev := range a.Events {
		if ev.Type == "" || ev.Aggregate == "" {
			return fmt.Errorf("%w: event without type or aggregate", ErrInvalid)
		}
		if !expected[ev.Aggregate] {
			return fmt.Errorf("%w: event %s touches %s without an expected version", ErrInvalid, ev.Type, ev.Aggregate)
		}
	}
	return nil
}

// Versions assigns per-aggregate versions to the events of a, starting from
// the expected versions. It returns each event's version and the final
// version of every aggregate.
func (a *Append) Versions() (each []uint64, final map[string]uint64) {
	final = make(map[string]uint64, len(a.Expect))
	for _, e := range a.Expect {
		final[e.Aggregate] = e.Version
	}
	each = make([]uint64, len(a.Events))
	for i, ev := range a.Events {
		final[ev.Aggregate]++
		each[i] = final[ev.Aggregate]
	}
	return each, final
}
