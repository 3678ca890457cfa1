package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kuzet/kuzet/internal/loadgen"
)

// watch prints the live event stream, the way a console receives it.
func watch(args []string) int {
	f := newFlags("watch", "Signs in and prints the live event stream (GET /api/v1/stream), one event per\nline, reconnecting with ?after=<last seq> so that no event is missed.")
	base := f.str("url", "KUZET_URL", "http://127.0.0.1:8080", "server base URL")
	username := f.str("username", "KUZET_WATCH_USER", "", "user to sign in as")
	password := f.str("password", "KUZET_WATCH_PASSWORD", "", "its password (or put it on standard input)")
	if !f.parse(args) {
		return 2
	}
	if *password == "" {
		p, err := readPassword(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kuzet watch:", err)
			return 2
		}
		*password = p
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c := loadgen.NewClient(*base)
	if err := c.SignIn(ctx, *username, *password); err != nil {
		fmt.Fprintln(os.Stderr, "kuzet watch:", err)
		return 1
	}
	u, err := url.Parse(c.Base)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kuzet watch:", err)
		return 2
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = "/api/v1/stream"
	var last uint64
	for ctx.Err() == nil {
		q := url.Values{}
		if last > 0 {
			q.Set("after", fmt.Sprint(last))
		}
		u.RawQuery = q.Encode()
		conn, _, err := websocket.DefaultDialer.DialContext(ctx, u.String(), http.Header{"Authorization": {"Bearer " + c.Token}})
		if err != nil {
			fmt.Fprintln(os.Stderr, "kuzet watch: connect:", err, "- retrying")
			time.Sleep(time.Second)
			continue
		}
		go func() { <-ctx.Done(); conn.Close() }()
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				if ctx.Err() == nil {
					fmt.Fprintln(os.Stderr, "kuzet watch: stream ended:", err, "- resuming after", last)
				}
				break
			}
			var head struct {
				Type      string          `json:"type"`
				Seq       uint64          `json:"seq"`
				Actor     string          `json:"actor"`
				Data      json.RawMessage `json:"data"`
				Incidents []any           `json:"incidents"`
				Units     []any           `json:"units"`
			}
			if json.Unmarshal(msg, &head) != nil {
				continue
			}
			switch head.Type {
			case "snapshot":
				fmt.Printf("snapshot at %d: %d open incidents, %d units\n", head.Seq, len(head.Incidents), len(head.Units))
			case "replayed":
				fmt.Printf("caught up to %d\n", head.Seq)
			default:
				fmt.Printf("%d %s by %s %s\n", head.Seq, head.Type, head.Actor, head.Data)
			}
			if head.Seq > last {
				last = head.Seq
			}
		}
		conn.Close()
	}
	return 0
}
