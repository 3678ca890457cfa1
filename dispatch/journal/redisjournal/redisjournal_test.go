package redisjournal

import (
	"context"
	"strings"
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

// TestWaitReplicas: with WaitReplicas 1 an append is acknowledged once the
// replica has it; with the replica gone the append is not acknowledged
// (the client sees why), and the client's retry with the same idempotency
// key, once a replica is back, gets the command that was stored, once.
func TestWaitReplicas(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	rdb := redis.NewClient(&redis.Options{Addr: primary.Addr})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	j, err := Open(ctx, Config{Client: rdb, WaitReplicas: 1, BlockFor: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	appendOne := func(key, agg string, version uint64) (journal.Result, error) {
		return j.Append(ctx, journal.Append{IdemKey: key, Fingerprint: "fp-" + key,
			Expect: []journal.Expectation{{Aggregate: agg, Version: version}},
			Events: []journal.Record{{Type: "test.done", Aggregate: agg, Time: time.Now().UTC(), Actor: "system", Data: []byte(`{}`)}}})
	}
	if _, err := appendOne("k1", "a:1", 0); err != nil {
		t.Fatalf("with the replica up: %v", err)
	}
	if msgs, _ := redis.NewClient(&redis.Options{Addr: replica.Addr}).XLen(ctx, keyStream).Result(); msgs != 1 {
		t.Fatalf("replica holds %d records, want 1", msgs)
	}
	replica.Stop()
	start := time.Now()
	_, err = appendOne("k2", "a:2", 0)
	if err == nil || !strings.Contains(err.Error(), "0 of 1 replicas confirmed") {
		t.Fatalf("with the replica down: %v", err)
	}
	t.Logf("not acknowledged after %v: %v", time.Since(start).Round(time.Millisecond), err)
	redistest.StartReplica(t, primary)
	res, err := appendOne("k2", "a:2", 0)
	if err != nil || !res.Duplicate || len(res.Records) != 1 || res.Records[0].Aggregate != "a:2" {
		t.Fatalf("retry once a replica is back: %+v %v", res, err)
	}
	if n, _ := rdb.XLen(ctx, keyStream).Result(); n != 2 {
		t.Fatalf("%d records, want 2 (the unacknowledged command stored once)", n)
	}
}
