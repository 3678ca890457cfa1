package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "time/tzdata" // incident numbers follow the centre's time zone on any machine

	"github.com/kuzet/kuzet/internal/node"
)

func serve(args []string) int {
	f := newFlags("serve", "Runs the Kuzet server. With no flags it keeps its data in ./data (embedded\nstorage, one node); --redis switches to Redis for several nodes.")
	addr := f.str("addr", "KUZET_ADDR", ":8080", "listen address")
	data := f.str("data", "KUZET_DATA", "./data", "data directory for embedded storage")
	redisURL := f.str("redis", "KUZET_REDIS_URL", "", "Redis URL, e.g. redis://127.0.0.1:6379/0; empty = embedded storage")
	centre := f.str("centre", "KUZET_CENTRE", "ALA", "centre code used in incident numbers (ALA-2026-000123)")
	tz := f.str("timezone", "KUZET_TIMEZONE", "Asia/Almaty", "time zone of the centre; incident numbers restart each year in it")
	catalogue := f.str("catalogue", "KUZET_CATALOGUE", "", "JSON file with incident types, dispositions and dispatch targets (default: built-in APCO-style list)")
	origins := f.str("allowed-origins", "KUZET_ALLOWED_ORIGINS", "", "comma-separated extra origins (https://host:port) allowed to open the WebSocket")
	sessionTTL := f.dur("session-ttl", "KUZET_SESSION_TTL", 12*time.Hour, "how long a sign-in lasts")
	shutdown := f.dur("shutdown-timeout", "KUZET_SHUTDOWN_TIMEOUT", 20*time.Second, "how long to wait for requests in flight on SIGTERM")
	sectors := f.str("sectors", "KUZET_SECTORS", "", "GeoJSON FeatureCollection file of patrol sectors (Polygon/MultiPolygon with properties id and name) loaded at start; replaces the set saved by PUT /api/v1/sectors")
	osrm := f.str("osrm", "KUZET_OSRM_URL", "", "OSRM server URL (http://host:5000) for driving-time ETAs in recommendations; empty = straight-line distance × 1.4 ÷ speed")
	staleAfter := f.dur("stale-after", "KUZET_STALE_AFTER", time.Minute, "a unit on duty with no position for this long raises a \"signal stale\" alert")
	maxAccuracy := f.str("max-accuracy", "KUZET_MAX_ACCURACY", "100", "metres: a unit whose latest fix is less accurate raises a \"fix inaccurate\" alert")
	level := f.str("log-level", "KUZET_LOG_LEVEL", "info", "debug, info, warn or error")
	format := f.str("log-format", "KUZET_LOG_FORMAT", "text", "text or json")
	if !f.parse(args) {
		return 2
	}
	log, err := newLogger(*level, *format)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kuzet:", err)
		return 2
	}
	maxAcc, err := strconv.ParseFloat(*maxAccuracy, 64)
	if err != nil || maxAcc <= 0 {
		fmt.Fprintf(os.Stderr, "kuzet: --max-accuracy %q must be a number of metres above 0\n", *maxAccuracy)
		return 2
	}
	var allowed []string
	for _, o := range strings.Split(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			allowed = append(allowed, o)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = node.Run(ctx, node.Config{
		Addr: *addr, DataDir: *data, RedisURL: *redisURL, Centre: *centre, TimeZone: *tz,
		CatalogueFile: *catalogue, AllowedOrigins: allowed, SessionTTL: *sessionTTL,
		ShutdownTimeout: *shutdown, Logger: log,
		SectorsFile: *sectors, OSRMURL: *osrm, StaleAfter: *staleAfter, MaxAccuracy: maxAcc,
	})
	if err != nil {
		log.Error("kuzet serve failed", "err", err)
		return 1
	}
	return 0
}
