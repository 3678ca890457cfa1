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
	"github.com/kuzet/kuzet/web"
)

func serve(args []string) int {
	f := newFlags("serve", "Runs the Kuzet server. With no flags it keeps its data in ./data (embedded\nstorage, one node); --redis switches to Redis for several nodes.")
	addr := f.str("addr", "KUZET_ADDR", ":8080", "listen address")
	data := f.str("data", "KUZET_DATA", "./data", "data directory for embedded storage")
	redisURL := f.str("redis", "KUZET_REDIS_URL", "", "Redis URL, e.g. redis://127.0.0.1:6379/0; empty = embedded storage")
	waitReplicas := f.int("redis-wait-replicas", "KUZET_REDIS_WAIT_REPLICAS", 0, "Redis replicas that must confirm each journal append before a command is acknowledged (WAIT, 5 s); 0 = the primary's AOF only")
	centre := f.str("centre", "KUZET_CENTRE", "ALA", "centre code used in incident numbers (ALA-2026-000123)")
	tz := f.str("timezone", "KUZET_TIMEZONE", "Asia/Almaty", "time zone of the centre; incident numbers restart each year in it")
	catalogue := f.str("catalogue", "KUZET_CATALOGUE", "", "JSON file with incident types, dispositions and dispatch targets (default: built-in APCO-style list)")
	origins := f.str("allowed-origins", "KUZET_ALLOWED_ORIGINS", "", "comma-separated extra origins (https://host:port) allowed to open the WebSocket")
	sessionTTL := f.dur("session-ttl", "KUZET_SESSION_TTL", 12*time.Hour, "how long a sign-in lasts")
	shutdown := f.dur("shutdown-timeout", "KUZET_SHUTDOWN_TIMEOUT", 20*time.Second, "how long to wait for requests in flight on SIGTERM")
	sectors := f.str("sectors", "KUZET_SECTORS", "", "GeoJSON FeatureCollection file of patrol sectors (Polygon/MultiPolygon with properties id and name) loaded at start; replaces the set saved by PUT /api/v1/sectors")
	osrm := f.str("osrm", "KUZET_OSRM_URL", "", "OSRM server URL (http://host:5000) for driving-time ETAs in recommendations; empty = straight-line distance × 1.4 ÷ speed")
	staleAfter := f.dur("stale-after", "KUZET_STALE_AFTER", time.Minute, "a unit on duty with no position for this long raises a \"signal stale\" alert")
	mapInterval := f.dur("map-interval", "KUZET_MAP_INTERVAL", 100*time.Millisecond, "how often map clients get coalesced position batches; shorter is fresher and costs more CPU")
	maxAccuracy := f.str("max-accuracy", "KUZET_MAX_ACCURACY", "100", "metres: a unit whose latest fix is less accurate raises a \"fix inaccurate\" alert")
	// Intake doors. Secrets: prefer the environment variables (a flag's
	// value shows in the process list); they are never logged.
	ctiToken := f.str("cti-token", "KUZET_CTI_TOKEN", "", "bearer token the PBX adapter sends to /ingest/cti (deploy/asterisk/); empty disables the PBX door")
	amlKey := f.str("aml-hmac-key", "KUZET_AML_HMAC_KEY", "", "key agreed with the handset vendors for the AML HTTPS hmac (ETSI TS 103 625); empty disables /ingest/aml")
	amlAlg := f.str("aml-hmac-algorithm", "KUZET_AML_HMAC_ALGORITHM", "sha1", "AML hmac algorithm: sha1 (deployed endpoints) or sha256")
	amlWait := f.dur("aml-wait", "KUZET_AML_WAIT", 2*time.Minute, "how long an AML fix waits for the PBX to offer its call")
	smsToken := f.str("sms-token", "KUZET_SMS_TOKEN", "", "bearer token the SMS gateway sends to /ingest/aml-sms; empty disables it")
	tgToken := f.str("telegram-token", "KUZET_TELEGRAM_TOKEN", "", "Telegram bot token from @BotFather; empty disables /ingest/telegram")
	tgSecret := f.str("telegram-secret", "KUZET_TELEGRAM_SECRET", "", "secret_token given to setWebhook, checked in X-Telegram-Bot-Api-Secret-Token (1-256 of A-Z a-z 0-9 _ -)")
	tgAPI := f.str("telegram-api", "KUZET_TELEGRAM_API", "https://api.telegram.org", "Telegram Bot API base URL (a local Bot API server, or a proxy)")
	mediaDir := f.str("media-dir", "KUZET_MEDIA_DIR", "", "directory for citizen photos, video and voice, stored by SHA-256 (default <data>/media)")
	reportRate := f.str("report-rate", "KUZET_REPORT_RATE", "6/1m", "citizen reports allowed per client address: N/duration burst, e.g. 6/1m (burst N, one more every duration/N)")
	chatRate := f.str("chat-rate", "KUZET_CHAT_RATE", "30/1m", "web-chat turns allowed per client address, same form as --report-rate")
	statusURL := f.str("status-url", "KUZET_STATUS_URL", "/report/status/", "public address citizens' status tokens are appended to, e.g. https://102.example.kz/report/status/")
	videoCfg := videoFlags(f) // videoflags.go
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
	repN, repRate, err := parseRate(*reportRate)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kuzet: --report-rate: %v\n", err)
		return 2
	}
	chatN, chatPerS, err := parseRate(*chatRate)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kuzet: --chat-rate: %v\n", err)
		return 2
	}
	vcfg, err := videoCfg()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kuzet:", err)
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
		Addr: *addr, DataDir: *data, RedisURL: *redisURL, RedisWaitReplicas: *waitReplicas, Centre: *centre, TimeZone: *tz,
		CatalogueFile: *catalogue, AllowedOrigins: allowed, SessionTTL: *sessionTTL,
		ShutdownTimeout: *shutdown, Logger: log,
		Intake: web.IntakeConfig{CTIToken: *ctiToken, AMLHMACKey: []byte(*amlKey), AMLHMACAlgorithm: *amlAlg, AMLWait: *amlWait,
			SMSToken: *smsToken, TelegramToken: *tgToken, TelegramSecret: *tgSecret, TelegramAPI: *tgAPI, MediaDir: *mediaDir,
			ReportBurst: repN, ReportRate: repRate, ChatBurst: chatN, ChatRate: chatPerS, StatusURL: *statusURL},
		SectorsFile: *sectors, OSRMURL: *osrm, StaleAfter: *staleAfter, MaxAccuracy: maxAcc, MapInterval: *mapInterval,
		Video: vcfg,
	})
	if err != nil {
		log.Error("kuzet serve failed", "err", err)
		return 1
	}
	return 0
}
