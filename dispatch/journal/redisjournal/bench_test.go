package redisjournal

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/kuzet/kuzet/dispatch/journal/journaltest"
	"github.com/kuzet/kuzet/internal/redistest"
)

// BenchmarkAppend: Lua compare-and-append on a redis-server with
// appendonly yes and appendfsync always.
func BenchmarkAppend(b *testing.B) {
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	j, err := Open(context.Background(), Config{Client: rdb})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	journaltest.BenchAppend(b, j)
}
