package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/kuzet/kuzet/internal/auth"
	"github.com/kuzet/kuzet/internal/node"
)

func user(args []string) int {
	subs := map[string]bool{"add": true, "list": true, "passwd": true, "disable": true, "enable": true}
	if len(args) == 0 || !subs[args[0]] {
		fmt.Fprintln(os.Stderr, `Usage: kuzet user add --username U --role R [--unit ID] [--data DIR | --redis URL] < password
       kuzet user passwd --username U [--data DIR | --redis URL] < new password
       kuzet user disable --username U [--data DIR | --redis URL]
       kuzet user enable --username U [--data DIR | --redis URL]
       kuzet user list [--data DIR | --redis URL]

Roles: calltaker, dispatcher, supervisor, viewer, officer (needs --unit), admin,
gateway (an AVL gateway or tracking server: may only post position batches).
The password (at least 10 characters) is read from the first line of standard input.
A new password or disabling ends the user's sessions at once (within a second
for a running server on embedded storage); enabling again needs a new sign-in.`)
		return 2
	}
	sub := args[0]
	f := newFlags("user "+sub, "Manages users in the same storage the server uses; safe while the server runs.")
	data := f.str("data", "KUZET_DATA", "./data", "data directory for embedded storage")
	redisURL := f.str("redis", "KUZET_REDIS_URL", "", "Redis URL; empty = embedded storage")
	username := f.String("username", "", "user name (2-40 lower-case letters, digits, . _ -)")
	role := f.String("role", "", "calltaker, dispatcher, supervisor, viewer, officer, admin or gateway")
	unit := f.String("unit", "", "unit id an officer serves on")
	if !f.parse(args[1:]) {
		return 2
	}
	ctx := context.Background()
	st, err := openAuthStore(ctx, *data, *redisURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kuzet user:", err)
		return 1
	}
	defer st.close()
	if sub == "list" {
		users, err := st.store.Users(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kuzet user:", err)
			return 1
		}
		for _, u := range users {
			state := ""
			if u.Disabled {
				state = "disabled"
			}
			fmt.Printf("%-24s %-11s %-10s %s\n", u.Username, u.Role, u.UnitID, state)
		}
		return 0
	}
	switch sub {
	case "disable", "enable":
		if err := auth.SetDisabled(ctx, st.store, *username, sub == "disable"); err != nil {
			fmt.Fprintf(os.Stderr, "kuzet user %s: %v\n", sub, err)
			return 1
		}
		fmt.Printf("user %s %sd\n", *username, sub)
		return 0
	case "passwd":
		password, err := readPassword(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kuzet user passwd:", err)
			return 2
		}
		if err := auth.SetPassword(ctx, st.store, *username, password); err != nil {
			fmt.Fprintln(os.Stderr, "kuzet user passwd:", err)
			return 1
		}
		fmt.Printf("password of %s changed; its sessions have ended\n", *username)
		return 0
	}
	password, err := readPassword(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kuzet user add:", err)
		return 2
	}
	u, err := auth.AddUser(ctx, st.store, *username, auth.Role(*role), *unit, password)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kuzet user add:", err)
		return 1
	}
	fmt.Printf("user %s added with role %s\n", u.Username, u.Role)
	return 0
}

func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("no password on standard input (e.g. echo 'long-password' | kuzet user add ...)")
	}
	return line, nil
}

type authStore struct {
	store auth.Store
	close func() error
}

// openAuthStore opens only the user store: the CLI must not take the
// journal's lock away from a running server.
func openAuthStore(ctx context.Context, data, redisURL string) (*authStore, error) {
	if redisURL == "" {
		fs, err := auth.OpenFileStore(data)
		if err != nil {
			return nil, err
		}
		return &authStore{store: fs, close: func() error { return nil }}, nil
	}
	st, err := node.OpenStorage(ctx, data, redisURL, slog.New(slog.NewTextHandler(io.Discard, nil)), 0)
	if err != nil {
		return nil, err
	}
	return &authStore{store: st.Auth, close: st.Close}, nil
}
