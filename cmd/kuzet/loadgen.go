package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kuzet/kuzet/internal/loadgen"
)

func loadgenCmd(args []string) int {
	f := newFlags("loadgen", "Drives a running server over its API and prints figures.\n  --mode commands: acknowledged create-incident commands per second\n  --mode fanout:   time from creating an incident to its event on N consoles\n  --mode nearest:  recommendations (k nearest available) for the open incidents,\n                   closed loop or at --rate per second, over plain HTTP/1.1")
	base := f.str("url", "KUZET_URL", "http://127.0.0.1:8080", "server base URL")
	username := f.str("username", "KUZET_LOADGEN_USER", "", "user to sign in as (a dispatcher)")
	password := f.str("password", "KUZET_LOADGEN_PASSWORD", "", "its password")
	mode := f.String("mode", "commands", "commands, fanout or nearest")
	workers := f.Int("clients", 64, "commands, nearest: concurrent clients")
	requests := f.Int("requests", 100_000, "nearest: requests in all")
	k := f.Int("k", 10, "nearest: recommendations per request")
	duration := f.Duration("duration", 10*time.Second, "commands: how long to run")
	consoles := f.Int("consoles", 1000, "fanout: WebSocket consoles")
	events := f.Int("events", 200, "fanout: incidents to create")
	rate := f.Float64("rate", 20, "fanout: incidents per second; nearest: requests per second offered (0 = as fast as answered)")
	if !f.parse(args) {
		return 2
	}
	ctx := context.Background()
	c := loadgen.NewClient(*base)
	if err := c.SignIn(ctx, *username, *password); err != nil {
		fmt.Fprintln(os.Stderr, "kuzet loadgen:", err)
		return 1
	}
	switch *mode {
	case "commands":
		r := loadgen.Commands(ctx, c, *workers, *duration)
		fmt.Printf("commands: %d acknowledged in %s = %.0f/s with %d clients; latency %s; failed %d\n",
			r.Acked, r.Elapsed.Round(time.Millisecond), r.PerSec, *workers, r.Latency, r.Failed)
		if r.FirstErr != nil {
			fmt.Printf("first error: %v\n", r.FirstErr)
		}
	case "fanout":
		r, err := loadgen.Fanout(ctx, c, *consoles, *events, *rate)
		fmt.Printf("fanout: %d consoles × %d events, received %d, missing %d; create sent → event received %s\n",
			r.Clients, r.Events, r.Received, r.Missing, r.Latency)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kuzet loadgen:", err)
			return 1
		}
	case "nearest":
		r, err := loadgen.Nearest(ctx, c, *workers, *requests, *k, *rate)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kuzet loadgen:", err)
			return 1
		}
		fmt.Printf("nearest: %d clients, k=%d: %s\n", *workers, *k, r)
	default:
		fmt.Fprintf(os.Stderr, "kuzet loadgen: --mode %q: use commands, fanout or nearest\n", *mode)
		return 2
	}
	return 0
}
