package node

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kuzet/kuzet/internal/auth"
	"github.com/kuzet/kuzet/internal/redistest"
)

// redisWithSupervisor starts a redis-server holding one supervisor, "sup"
// with password "supervisor-password", and returns a client of it.
func redisWithSupervisor(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { rdb.Close() })
	if _, err := auth.AddUser(context.Background(), auth.NewRedisStore(rdb), "sup", auth.RoleSupervisor, "", "supervisor-password"); err != nil {
		t.Fatal(err)
	}
	return rs, rdb
}

// nodes runs whole nodes (Run) in a test until stop is called.
type nodes struct {
	t      *testing.T
	ctx    context.Context
	cancel context.CancelFunc
	done   chan error
	n      int
}

func newNodes(t *testing.T) *nodes {
	ctx, cancel := context.WithCancel(context.Background())
	ns := &nodes{t: t, ctx: ctx, cancel: cancel, done: make(chan error, 8)}
	t.Cleanup(cancel)
	return ns
}

// start runs a node with cfg on a free loopback port (Addr, DataDir and
// Logger are filled in) and returns its base URL once /readyz answers 200.
func (ns *nodes) start(cfg Config) string {
	t := ns.t
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	ln.Close()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ns.n++
	go func() { ns.done <- Run(ns.ctx, cfg) }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + cfg.Addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return "http://" + cfg.Addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("node not ready")
		}
	}
}

// stop ends every node and checks that each returned without error.
func (ns *nodes) stop() {
	t := ns.t
	t.Helper()
	ns.cancel()
	for range ns.n {
		select {
		case err := <-ns.done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("node did not stop")
		}
	}
}
