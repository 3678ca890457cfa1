package redisjournal

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kuzet/kuzet/dispatch/journal"
	"github.com/kuzet/kuzet/dispatch/journal/journaltest"
	"github.com/kuzet/kuzet/internal/redistest"
)

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	db := 0
	journaltest.Run(t, journaltest.Backend{
		Shared: true,
		Fresh: func(t *testing.T) func() journal.Journal {
			// Each test gets its own logical database on the one server.
			db++
			if db > 15 {
				t.Fatal("out of Redis databases")
			}
			n := db
			return func() journal.Journal {
				rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: n})
				t.Cleanup(func() { rdb.Close() })
				j, err := Open(context.Background(), Config{Client: rdb, BlockFor: 200 * time.Millisecond})
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				return j
			}
		},
	})
}
