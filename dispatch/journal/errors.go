package journal

import (
	"errors"
	"fmt"
)

// ErrInvalid reports an Append that breaks the contract (no events, an
// event on an aggregate without an expected version, ...). It is a bug in
// the caller, never a client error.
var ErrInvalid = errors.New("journal: invalid append")

// ErrConflict reports that an aggregate was changed by someone else since the
// caller read it. Errors wrapping it are *ConflictError.
var ErrConflict = errors.New("journal: version conflict")

// ErrIdempotencyKeyReused reports an idempotency key that was already used for
// a different command.
var ErrIdempotencyKeyReused = errors.New("journal: idempotency key reused for a different request")

// ErrCorrupt reports a record that cannot be decoded or whose hash chain is
// broken.
var ErrCorrupt = errors.New("journal: corrupt record")

// ErrFailed reports that the journal could not make a write durable and has
// stopped accepting appends (fail-stop: after a failed fsync the state of the
// file is unknown). Restart the server.
var ErrFailed = errors.New("journal: storage failed; restart required")

// ErrClosed reports use of a closed journal.
var ErrClosed = errors.New("journal: closed")

// ConflictError tells which aggregate conflicted and how far the journal is,
// so the caller can wait for its projection to catch up before retrying.
type ConflictError struct {
	Aggregate string
	Expected  uint64
	Actual    uint64
	Head      uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("journal: %s is at version %d, expected %d", e.Aggregate, e.Actual, e.Expected)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }
