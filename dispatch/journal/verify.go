package journal

import (
	"context"
	"errors"
	"fmt"
)

// BrokenError names the first record where the chain does not hold.
type BrokenError struct {
	Seq    uint64
	Reason string
}

func (e *BrokenError) Error() string {
	return fmt.Sprintf("journal: chain broken at record %d: %s", e.Seq, e.Reason)
}

func (e *BrokenError) Unwrap() error { return ErrCorrupt }

// Verify walks the whole journal and checks, for every record, that its
// sequence number follows the previous one, that it names the previous
// record's hash, and that its own hash is SHA-256(prev ‖ body). It returns
// the number of records checked, or a *BrokenError for the first bad one.
func Verify(ctx context.Context, j Journal) (uint64, error) {
	var (
		n    uint64
		prev string
	)
	err := j.Read(ctx, 0, func(r Record) error {
		switch {
		case r.Seq != n+1:
			return &BrokenError{Seq: r.Seq, Reason: fmt.Sprintf("sequence %d follows %d", r.Seq, n)}
		case r.Prev != prev:
			return &BrokenError{Seq: r.Seq, Reason: "previous-hash link does not match: this record or the one before it was altered"}
		case Chain(prev, r.Body) != r.Hash:
			return &BrokenError{Seq: r.Seq, Reason: "stored hash does not match the record's content"}
		}
		prev = r.Hash
		n = r.Seq
		return nil
	})
	var be *BrokenError
	if errors.As(err, &be) {
		return n, err
	}
	if err != nil {
		return n, fmt.Errorf("journal: verify after record %d: %w", n, err)
	}
	return n, nil
}
