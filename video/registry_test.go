package video

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// Two nodes share Redis: a viewer reaching the node that does not own the
// stream is redirected (307) to the owner, and the owner's key expires
// when it stops heartbeating.
func TestStreamRegistryRedirect(t *testing.T) {
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	a := newTestEnv(t, func(c *Config) {
		c.Redis = rdb
		c.AdvertiseURL = "http://node-a.test:8080"
		c.StreamTTL = 2 * time.Second
	})
	b := newTestEnv(t, func(c *Config) {
		c.Redis = rdb
		c.AdvertiseURL = "http://node-b.test:8080"
		c.StreamTTL = 2 * time.Second
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.srv.Run(ctx)

	startPublisher(t, a, "77")
	owner, err := rdb.Get(ctx, "kuzet:video:stream:unit:77").Result()
	if err != nil || owner != "http://node-a.test:8080" {
		t.Fatalf("registry: %q %v", owner, err)
	}
	res := post(t, b.http.URL+"/whep/unit:77", "application/sdp", viewerOffer(t), nil)
	if res.status != http.StatusTemporaryRedirect || res.location != "http://node-a.test:8080/whep/unit:77" {
		t.Fatalf("node b: %d %q %s", res.status, res.location, res.body)
	}
	// Node b may not publish the same unit while a owns it.
	pubRes := post(t, b.http.URL+"/whip/unit:77", "application/sdp", publisherOffer(t, "video/H264", false), map[string]string{"X-Unit": "77"})
	if pubRes.status != http.StatusConflict {
		t.Fatalf("second node publish: %d %s", pubRes.status, pubRes.body)
	}
	// The heartbeat keeps the key beyond its TTL.
	time.Sleep(2500 * time.Millisecond) // the TTL must pass for the test to mean anything
	if ttl, _ := rdb.PTTL(ctx, "kuzet:video:stream:unit:77").Result(); ttl <= 0 {
		t.Fatalf("key lost despite heartbeat: ttl %v", ttl)
	}
	// Closing node a releases the key.
	a.srv.Close()
	if n, _ := rdb.Exists(ctx, "kuzet:video:stream:unit:77").Result(); n != 0 {
		t.Fatal("key kept after the owner closed")
	}
}
