package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kuzet/kuzet/internal/loadgen"
	"github.com/kuzet/kuzet/internal/redistest"
)

// These tests run the real binary as child processes: a crash is a real
// SIGKILL, two nodes are two processes.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kuzet-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "kuzet")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kuzet:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type server struct {
	cmd  *exec.Cmd
	addr string
	log  *strings.Builder
	mu   *sync.Mutex
	done chan error
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer runs `kuzet serve` and waits until /readyz answers 200.
func startServer(t *testing.T, addr string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--addr", addr, "--log-level", "warn"}, args...)...)
	s := &server{cmd: cmd, addr: addr, log: &strings.Builder{}, mu: &sync.Mutex{}, done: make(chan error, 1)}
	pipe, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() { s.kill() })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("kuzet serve exited: %v\n%s", err, s.output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("kuzet serve not ready in time\n%s", s.output())
	return nil
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case err := <-s.done:
		s.done <- err
	case <-time.After(10 * time.Second):
	}
}

// signal sends sig and waits for the process to exit.
func (s *server) signal(t *testing.T, sig syscall.Signal) {
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Error(err)
		return
	}
	select {
	case err := <-s.done:
		s.done <- err // leave it for whoever waits next
	case <-time.After(30 * time.Second):
		t.Errorf("kuzet did not exit after %v", sig)
	}
}

func addUser(t *testing.T, storage []string, username, role string, extra ...string) {
	t.Helper()
	cmd := exec.Command(binary, append(append([]string{"user", "add", "--username", username, "--role", role}, storage...), extra...)...)
	cmd.Stdin = strings.NewReader("crash-test-password\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kuzet user add: %v\n%s", err, out)
	}
}

func client(t *testing.T, addr, username string) *loadgen.Client {
	c := loadgen.NewClient("http://" + addr)
	if err := c.SignIn(context.Background(), username, "crash-test-password"); err != nil {
		t.Fatal(err)
	}
	return c
}

type storageKind struct {
	name string
	// flags returns the storage flags for a fresh store.
	flags func(t *testing.T) []string
}

var storages = []storageKind{
	{"embedded", func(t *testing.T) []string { return []string{"--data", t.TempDir()} }},
	{"redis", func(t *testing.T) []string { return []string{"--redis", redistest.Start(t).URL()} }},
}

// TestCrashLosesNoAcknowledgedCommand: several clients send 1,000
// create-incident commands with idempotency keys; the server is killed
// with SIGKILL part-way (or stopped with SIGTERM, which must drain); after a
// restart the clients retry everything not acknowledged. Every acknowledged
// incident must exist exactly once, and the retries must not duplicate.
func TestCrashLosesNoAcknowledgedCommand(t *testing.T) {
	cases := []struct {
		storage storageKind
		sig     syscall.Signal
	}{
		{storages[0], syscall.SIGKILL},
		{storages[1], syscall.SIGKILL},
		{storages[0], syscall.SIGTERM},
	}
	for _, tc := range cases {
		t.Run(tc.storage.name+"/"+tc.sig.String(), func(t *testing.T) {
			storage := tc.storage.flags(t)
			addUser(t, storage, "taker", "calltaker")
			addr := freeAddr(t)
			srv := startServer(t, addr, storage...)

			const clients, total = 8, 1000
			keys := make([]string, total)
			for i := range keys {
				keys[i] = loadgen.NewKey()
			}
			var (
				mu    sync.Mutex
				acked = map[string]string{} // key → incident id
				count atomic.Int32
				wg    sync.WaitGroup
			)
			c := client(t, addr, "taker")
			killAt := int32(300 + time.Now().UnixNano()%200)
			killed := make(chan struct{})
			var once sync.Once
			for w := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < total; i += clients {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						in, err := c.CreateIncident(ctx, keys[i], "crash "+keys[i])
						cancel()
						if err != nil {
							select {
							case <-killed:
								return // the server is gone: stop; retry later
							default:
							}
							var se *loadgen.StatusError
							if errors.As(err, &se) && se.Status == 503 {
								return // draining
							}
							t.Errorf("before the crash: %v", err)
							return
						}
						mu.Lock()
						acked[keys[i]] = in.ID
						mu.Unlock()
						if count.Add(1) == killAt {
							once.Do(func() {
								close(killed)
								go srv.signal(t, tc.sig)
							})
						}
					}
				}()
			}
			wg.Wait()
			once.Do(func() { close(killed); srv.signal(t, tc.sig) })
			<-srv.done
			mu.Lock()
			before := len(acked)
			mu.Unlock()
			if before >= total {
				t.Fatalf("all %d commands finished before the %v; nothing was tested", total, tc.sig)
			}
			t.Logf("%d of %d acknowledged before %v", before, total, tc.sig)

			srv = startServer(t, addr, storage...)
			c = client(t, addr, "taker")
			var retried atomic.Int32
			for w := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < total; i += clients {
						mu.Lock()
						prev, was := acked[keys[i]]
						mu.Unlock()
						// Retry every unacknowledged key, and a sample of
						// acknowledged ones (a client that lost the answer).
						if was && i%10 != 0 {
							continue
						}
						in, err := c.CreateIncident(context.Background(), keys[i], "crash "+keys[i])
						if err != nil {
							t.Errorf("retry after restart: %v", err)
							return
						}
						if was && in.ID != prev {
							t.Errorf("retry of an acknowledged command created %s, first answer was %s", in.ID, prev)
						}
						retried.Add(1)
						mu.Lock()
						acked[keys[i]] = in.ID
						mu.Unlock()
					}
				}()
			}
			wg.Wait()

			var list struct {
				Incidents []loadgen.Incident `json:"incidents"`
			}
			if err := c.Do(context.Background(), "GET", "/api/v1/incidents?limit=1000", "", nil, &list); err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, in := range list.Incidents {
				seen[in.ID]++
			}
			if len(list.Incidents) != total {
				t.Errorf("%d incidents stored, want exactly %d", len(list.Incidents), total)
			}
			for key, id := range acked {
				if seen[id] != 1 {
					t.Errorf("acknowledged incident %s (key %s) stored %d times", id, key, seen[id])
				}
			}
			srv.signal(t, syscall.SIGTERM)
			out, err := exec.Command(binary, append([]string{"audit-verify"}, storage...)...).CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), "OK:") {
				t.Errorf("audit-verify after the crash: %v\n%s", err, out)
			}
		})
	}
}

// TestTwoNodesOneUnitOneWinner: two `kuzet serve` processes on one Redis;
// 50 dispatchers, half on each node, assign the same available unit to 50
// different incidents at once. Exactly one succeeds.
func TestTwoNodesOneUnitOneWinner(t *testing.T) {
	storage := storages[1].flags(t)
	addUser(t, storage, "disp", "dispatcher")
	addUser(t, storage, "boss", "supervisor")
	a, b := freeAddr(t), freeAddr(t)
	startServer(t, a, storage...)
	startServer(t, b, storage...)
	ctx := context.Background()
	ca, cb, boss := client(t, a, "disp"), client(t, b, "disp"), client(t, a, "boss")
	if err := boss.Do(ctx, "POST", "/api/v1/units", "", map[string]any{"id": "NG-7", "call_sign": "Сұңқар-7", "agency": "national_guard", "kind": "tablet_post"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := boss.Do(ctx, "POST", "/api/v1/units/NG-7/shift", "", map[string]any{"on_shift": true}, nil); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 50)
	for i := range ids {
		in, err := ca.CreateIncident(ctx, "", fmt.Sprintf("race %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = in.ID
	}
	// Node b must know all incidents before the race starts.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := cb.Do(ctx, "GET", "/api/v1/incidents/"+ids[49], "", nil, nil); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node b never saw node a's incidents")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var wins, busy atomic.Int32
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ca
			if i%2 == 1 {
				c = cb
			}
			err := c.Do(ctx, "POST", "/api/v1/incidents/"+ids[i]+"/assignments", loadgen.NewKey(), map[string]any{"unit_ids": []string{"NG-7"}}, nil)
			var se *loadgen.StatusError
			switch {
			case err == nil:
				wins.Add(1)
			case errors.As(err, &se) && se.Status == 409 && strings.Contains(se.Body, "unit_busy"):
				busy.Add(1)
			default:
				t.Errorf("assign %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || busy.Load() != 49 {
		t.Fatalf("wins %d, busy %d; want 1 and 49", wins.Load(), busy.Load())
	}
}

// TestLoadgenNearest: `kuzet loadgen --mode nearest` against a running
// embedded server with a unit on duty and a position: it signs in, finds
// the open incidents and reports the recommendations it was answered, and
// with no open incident it says what to do instead of measuring nothing.
func TestLoadgenNearest(t *testing.T) {
	storage := storages[0].flags(t)
	addUser(t, storage, "disp", "dispatcher")
	addUser(t, storage, "boss", "supervisor")
	addr := freeAddr(t)
	startServer(t, addr, storage...)
	loadgenRun := func() (string, error) {
		cmd := exec.Command(binary, "loadgen", "--url", "http://"+addr, "--username", "disp", "--password", "crash-test-password",
			"--mode", "nearest", "--clients", "2", "--requests", "400", "--k", "3")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := loadgenRun(); err == nil || !strings.Contains(out, "no open incidents") {
		t.Fatalf("without incidents: %v\n%s", err, out)
	}
	ctx := context.Background()
	boss := client(t, addr, "boss")
	if err := boss.Do(ctx, "POST", "/api/v1/units", "", map[string]any{"id": "P-1", "call_sign": "Беркут-1", "agency": "police", "kind": "car"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := boss.Do(ctx, "POST", "/api/v1/units/P-1/shift", "", map[string]any{"on_shift": true}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := boss.CreateIncident(ctx, "", "nearest"); err != nil {
		t.Fatal(err)
	}
	out, err := loadgenRun()
	if err != nil || !strings.Contains(out, "nearest: 2 clients, k=3: 400 in") {
		t.Fatalf("loadgen nearest: %v\n%s", err, out)
	}
}

// TestUserPasswdDisableWhileServing: `kuzet user disable` and `kuzet user
// passwd`, run against the data directory of a running server, end the
// user's sessions within a few seconds; `enable` lets the user sign in
// again with the new password.
func TestUserPasswdDisableWhileServing(t *testing.T) {
	storage := storages[0].flags(t)
	addUser(t, storage, "aigerim", "dispatcher")
	addr := freeAddr(t)
	startServer(t, addr, storage...)
	ctx := context.Background()
	userCmd := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command(binary, append(append([]string{"user"}, args...), storage...)...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kuzet user %v: %v\n%s", args, err, out)
		}
	}
	ended := func(c *loadgen.Client) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := c.Do(ctx, "GET", "/api/v1/me", "", nil, nil)
			var se *loadgen.StatusError
			if errors.As(err, &se) && se.Status == http.StatusUnauthorized {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("session still works: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	c := client(t, addr, "aigerim")
	userCmd("", "disable", "--username", "aigerim")
	ended(c)
	if err := loadgen.NewClient("http://"+addr).SignIn(ctx, "aigerim", "crash-test-password"); err == nil {
		t.Fatal("a disabled user signed in")
	}
	// A running server re-reads the users file at most once a second; each
	// refused sign-in counts towards the lock-out, so wait rather than retry.
	signIn := func(password string) *loadgen.Client {
		t.Helper()
		time.Sleep(1500 * time.Millisecond)
		c := loadgen.NewClient("http://" + addr)
		if err := c.SignIn(ctx, "aigerim", password); err != nil {
			t.Fatalf("sign in: %v", err)
		}
		return c
	}
	userCmd("", "enable", "--username", "aigerim")
	c = signIn("crash-test-password")
	userCmd("new-dispatch-password\n", "passwd", "--username", "aigerim")
	ended(c)
	signIn("new-dispatch-password")
}
