// Package redistest starts a real redis-server for tests: on a free loopback
// port, in a temporary directory, with the durability settings Kuzet requires
// (appendonly yes, appendfsync always), and stops it when the test ends.
//
// A test that needs Redis calls Start; if redis-server is not installed the
// test fails with a message naming the package to install. It never skips:
// the README's test command installs redis-server before running the tests.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a running redis-server owned by one test.
type Server struct {
	Addr string // host:port on loopback
	Dir  string // working directory holding the AOF
	cmd  *exec.Cmd
	// stopped is set by the first stop (Stop, then the cleanup).
	stopped bool
}

// URL is the redis:// URL of the server, as passed to --redis.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Start runs redis-server for the duration of t and returns it once it
// accepts connections.
func Start(t testing.TB) *Server { return start(t) }

// StartReplica runs a redis-server replicating primary and returns it once
// its initial synchronisation is done.
func StartReplica(t testing.TB, primary *Server) *Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(primary.Addr)
	s := start(t, "--replicaof", host, port)
	deadline := time.Now().Add(10 * time.Second)
	for !s.synced() {
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not finish its sync with %s", s.Addr, primary.Addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// Stop stops the server now (the test's cleanup would later).
func (s *Server) Stop() { s.stop() }

// synced reports whether a replica's link to its primary is up.
func (s *Server) synced() bool {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte("INFO replication\r\n"))
	r := bufio.NewReader(c)
	for range 100 {
		line, err := r.ReadString('\n')
		if err != nil {
			return false
		}
		if strings.HasPrefix(line, "master_link_status:") {
			return strings.TrimSpace(line) == "master_link_status:up"
		}
	}
	return false
}

func start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found in PATH: install Debian's redis-server package (the README's test command does)")
	}
	dir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command(bin, append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--appendonly", "yes",
		"--appendfsync", "always",
		"--save", "",
		"--protected-mode", "yes",
		"--repl-diskless-sync-delay", "0", // a replica syncs at once
		"--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
	}, extra...)...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, cmd: cmd}
	t.Cleanup(s.stop)
	if err := waitReady(s.Addr, 10*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		t.Fatalf("redis-server did not become ready: %v\n%s", err, log)
	}
	return s
}

func (s *Server) stop() {
	if s.cmd.Process == nil || s.stopped {
		return
	}
	s.stopped = true
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitReady sends PING until the server answers PONG or the timeout passes.
func waitReady(addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil && line == "+PONG\r\n" {
				return nil
			}
			last = fmt.Errorf("answer %q: %v", line, err)
		} else {
			last = err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return last
}
