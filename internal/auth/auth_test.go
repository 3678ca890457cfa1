package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kuzet/kuzet/internal/redistest"
)

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("қауіпсіз-құпиясөз")
	if err != nil {
		t.Fatal(err)
	}
	if !CheckPassword(h, "қауіпсіз-құпиясөз") || CheckPassword(h, "қауіпсіз-құпиясөж") {
		t.Fatal("password check wrong")
	}
	if _, err := HashPassword("short"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short password: %v", err)
	}
	for _, bad := range []string{"", "$argon2id$", "$argon2id$v=19$m=99999999,t=1,p=1$AA$AA", h + "x"} {
		if CheckPassword(bad, "x") {
			t.Errorf("hash %q accepted", bad)
		}
	}
}

func stores(t *testing.T) map[string]Store {
	fs, err := OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	return map[string]Store{"file": fs, "redis": NewRedisStore(rdb)}
}

func TestSignInSessionsDevices(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now()
			var mu sync.Mutex
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			a, _ := New(Config{Store: st, Now: clock, SessionTTL: time.Hour})
			if _, err := a.AddUser(ctx, "aigerim", RoleDispatcher, "", "dispatch-2026!"); err != nil {
				t.Fatal(err)
			}
			if _, err := a.AddUser(ctx, "aigerim", RoleDispatcher, "", "dispatch-2026!"); !errors.Is(err, ErrUserExists) {
				t.Fatalf("duplicate user: %v", err)
			}
			if _, err := a.AddUser(ctx, "nurlan", RoleOfficer, "", "officer-2026!"); !errors.Is(err, ErrInvalid) {
				t.Fatalf("officer without unit: %v", err)
			}
			if _, err := a.AddUser(ctx, "x", Role("god"), "", "whatever-2026"); !errors.Is(err, ErrInvalid) {
				t.Fatalf("bad role: %v", err)
			}
			tok, _, _, err := a.SignIn(ctx, "aigerim", "dispatch-2026!")
			if err != nil {
				t.Fatal(err)
			}
			if len(tok) < 43 {
				t.Fatalf("token %q too short for 256 bits", tok)
			}
			p, err := a.Resolve(ctx, tok)
			if err != nil || p.Role != RoleDispatcher || p.ID() != "user:aigerim" {
				t.Fatalf("resolve = %+v %v", p, err)
			}
			if _, err := a.Resolve(ctx, tok+"x"); !errors.Is(err, ErrBadToken) {
				t.Fatalf("bad token: %v", err)
			}
			mu.Lock()
			now = now.Add(2 * time.Hour)
			mu.Unlock()
			if _, err := a.Resolve(ctx, tok); !errors.Is(err, ErrExpired) && !errors.Is(err, ErrBadToken) {
				t.Fatalf("expired: %v", err)
			}
			for range 5 {
				if _, _, _, err := a.SignIn(ctx, "aigerim", "wrong-password"); !errors.Is(err, ErrBadCredentials) {
					t.Fatalf("wrong password: %v", err)
				}
			}
			if _, _, _, err := a.SignIn(ctx, "aigerim", "dispatch-2026!"); !errors.Is(err, ErrThrottled) {
				t.Fatalf("after 5 failures: %v", err)
			}
			d, dtok, err := a.AddDevice(ctx, "tablet-17", "NG-17", "Samsung tablet")
			if err != nil {
				t.Fatal(err)
			}
			p, err = a.Resolve(ctx, dtok)
			if err != nil || p.Role != RoleDevice || p.UnitID != "NG-17" || p.Name != d.ID {
				t.Fatalf("device = %+v %v", p, err)
			}
		})
	}
}

func TestFileStoreSharedWithCommand(t *testing.T) {
	dir := t.TempDir()
	server, _ := OpenFileStore(dir)
	cli, _ := OpenFileStore(dir) // `kuzet user add` in another process
	ctx := context.Background()
	a, _ := New(Config{Store: server})
	if _, err := AddUser(ctx, cli, "serik", RoleSupervisor, "", "supervisor-2026"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := a.SignIn(ctx, "serik", "supervisor-2026"); err != nil {
		t.Fatalf("server does not see the user the command added: %v", err)
	}
	if _, err := AddUser(ctx, cli, "dana", RoleCallTaker, "", "calltaker-2026"); err != nil {
		t.Fatal(err)
	}
	users, _ := server.Users(ctx)
	if len(users) != 2 {
		t.Fatalf("users = %v", users)
	}
}

// TestPasswordChangeAndDisable: a new password ends the sessions signed in
// with the old one; disabling ends them at once and refuses sign-in;
// enabling again lets the user sign in but does not revive old sessions.
func TestPasswordChangeAndDisable(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			a, _ := New(Config{Store: st, SessionTTL: time.Hour, MaxFailures: 100})
			if _, err := a.AddUser(ctx, "serik", RoleSupervisor, "", "supervisor-2026"); err != nil {
				t.Fatal(err)
			}
			old, _, _, err := a.SignIn(ctx, "serik", "supervisor-2026")
			if err != nil {
				t.Fatal(err)
			}
			if err := SetPassword(ctx, st, "serik", "short"); !errors.Is(err, ErrInvalid) {
				t.Fatalf("short password: %v", err)
			}
			if err := SetPassword(ctx, st, "nobody", "long-enough-password"); !errors.Is(err, ErrUnknownUser) {
				t.Fatalf("unknown user: %v", err)
			}
			if _, err := a.Resolve(ctx, old); err != nil {
				t.Fatalf("a refused change must not end the session: %v", err)
			}
			if err := SetPassword(ctx, st, "serik", "new-supervisor-2026"); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Resolve(ctx, old); !errors.Is(err, ErrBadToken) {
				t.Fatalf("session from before the password change: %v", err)
			}
			if _, _, _, err := a.SignIn(ctx, "serik", "supervisor-2026"); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("old password: %v", err)
			}
			cur, _, _, err := a.SignIn(ctx, "serik", "new-supervisor-2026")
			if err != nil {
				t.Fatal(err)
			}
			if err := SetDisabled(ctx, st, "serik", true); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Resolve(ctx, cur); !errors.Is(err, ErrBadToken) {
				t.Fatalf("session of a disabled user: %v", err)
			}
			if _, _, _, err := a.SignIn(ctx, "serik", "new-supervisor-2026"); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("disabled user signed in: %v", err)
			}
			if err := SetDisabled(ctx, st, "serik", false); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Resolve(ctx, cur); !errors.Is(err, ErrBadToken) {
				t.Fatalf("enabling revived an old session: %v", err)
			}
			if _, _, _, err := a.SignIn(ctx, "serik", "new-supervisor-2026"); err != nil {
				t.Fatalf("enabled user: %v", err)
			}
		})
	}
}
