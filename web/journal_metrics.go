package web

import (
	"context"
	"time"

	"github.com/kuzet/kuzet/dispatch/journal"
)

// Append implements journal.Journal.
func (c *JournalCounter) Append(ctx context.Context, a journal.Append) (journal.Result, error) {
	start := time.Now()
	res, err := c.Journal.Append(ctx, a)
	if err == nil && !res.Duplicate {
		c.appended.Add(float64(len(res.Records)))
		c.duration.Observe(time.Since(start).Seconds())
	}
	return res, err
}
