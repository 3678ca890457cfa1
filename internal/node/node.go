// Package node assembles one Kuzet server process: storage (embedded files
// or Redis), the journal, the dispatch service, authentication and the web
// layer, and runs them until the context ends. Start-up opens them in that
// order and closes what it opened if a later step fails; shutdown stops
// accepting requests, lets the ones in flight finish (an acknowledged
// command is never cut short), drains WebSocket clients, then closes in
// reverse order.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/dispatch/intake"
	"github.com/kuzet/kuzet/dispatch/journal"
	"github.com/kuzet/kuzet/dispatch/journal/filejournal"
	"github.com/kuzet/kuzet/dispatch/journal/redisjournal"
	"github.com/kuzet/kuzet/internal/auth"
	"github.com/kuzet/kuzet/web"
)

// Config is everything `kuzet serve` can be told.
type Config struct {
	Addr     string
	DataDir  string
	RedisURL string
	// RedisWaitReplicas is how many replicas must confirm each journal
	// append (WAIT) before it is acknowledged; 0 = none.
	RedisWaitReplicas int
	Centre            string // incident number prefix
	TimeZone          string
	CatalogueFile     string
	AllowedOrigins    []string
	SessionTTL        time.Duration
	ShutdownTimeout   time.Duration
	Logger            *slog.Logger
	// Intake doors (web/intake.go): PBX, AML, citizen reports, chat-bot.
	// Intake.MediaDir defaults to <DataDir>/media.
	Intake web.IntakeConfig

	// Tracking (gis.go).
	SectorsFile string        // GeoJSON FeatureCollection of patrol sectors loaded at start
	OSRMURL     string        // OSRM server for ETAs; empty = straight line
	StaleAfter  time.Duration // no fix for this long raises "signal stale"; 0 = 60 s
	MaxAccuracy float64       // fixes worse than this (metres) raise "inaccurate"; 0 = 100
	MapInterval time.Duration // map sockets get coalesced position batches this often; 0 = 100 ms

	// Video: WHIP/WHEP media, cameras (video.go).
	Video VideoConfig
}

// Storage is the opened storage: a journal and an auth store, plus what
// must be closed with them.
type Storage struct {
	Journal journal.Journal
	Auth    auth.Store
	Redis   *redis.Client // nil in embedded mode
	closers []func() error
}

// Close closes the storage in reverse order of opening.
func (s *Storage) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	return errors.Join(errs...)
}

// OpenStorage opens Redis when url is set, the data directory otherwise.
// waitReplicas (Redis only) is how many replicas must confirm each journal
// append; tools that only read pass 0.
func OpenStorage(ctx context.Context, dataDir, url string, log *slog.Logger, waitReplicas int) (*Storage, error) {
	st := &Storage{}
	if url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("--redis %q is not a redis:// URL: %w", redactURL(url), err)
		}
		opt.PoolSize = 64
		st.Redis = redis.NewClient(opt)
		st.closers = append(st.closers, st.Redis.Close)
		j, err := redisjournal.Open(ctx, redisjournal.Config{Client: st.Redis, Logger: log, WaitReplicas: waitReplicas})
		if err != nil {
			st.Close()
			return nil, err
		}
		st.Journal = j
		st.closers = append(st.closers, j.Close)
		st.Auth = auth.NewRedisStore(st.Redis)
		return st, nil
	}
	j, err := filejournal.Open(filejournal.Config{Dir: dataDir, Logger: log})
	if err != nil {
		return nil, err
	}
	st.Journal = j
	st.closers = append(st.closers, j.Close)
	fs, err := auth.OpenFileStore(dataDir)
	if err != nil {
		st.Close()
		return nil, err
	}
	st.Auth = fs
	return st, nil
}

// redactURL drops the password from a Redis URL for messages.
func redactURL(u string) string {
	if i, j := strings.Index(u, "://"), strings.LastIndex(u, "@"); i >= 0 && j > i {
		return u[:i+3] + "***@" + u[j+1:]
	}
	return u
}

// Run serves until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 20 * time.Second
	}
	loc, err := time.LoadLocation(cfg.TimeZone)
	if err != nil {
		return fmt.Errorf("--timezone %q: %w", cfg.TimeZone, err)
	}
	cat := dispatch.DefaultCatalogue()
	if cfg.CatalogueFile != "" {
		f, err := os.Open(cfg.CatalogueFile)
		if err != nil {
			return fmt.Errorf("--catalogue: %w", err)
		}
		cat, err = dispatch.LoadCatalogue(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("--catalogue %s: %w", cfg.CatalogueFile, err)
		}
	}
	if cfg.RedisURL == "" {
		abs, _ := filepath.Abs(cfg.DataDir)
		log.Info("storage: embedded", "data", abs)
	} else {
		log.Info("storage: Redis", "url", redactURL(cfg.RedisURL))
	}
	if cfg.RedisWaitReplicas < 0 || cfg.RedisWaitReplicas > 0 && cfg.RedisURL == "" {
		return fmt.Errorf("--redis-wait-replicas %d: needs --redis and a number ≥ 0", cfg.RedisWaitReplicas)
	}
	st, err := OpenStorage(ctx, cfg.DataDir, cfg.RedisURL, log, cfg.RedisWaitReplicas)
	if err != nil {
		return err
	}
	defer st.Close()

	trk, err := openTracking(ctx, cfg, st, log)
	if err != nil {
		return err
	}
	defer trk.close()
	gctx, stopTracking := context.WithCancel(ctx)
	defer stopTracking() // before trk.close: its goroutines end first

	metrics := web.NewMetrics(nil)
	j := metrics.CountJournal(st.Journal)
	svc, err := dispatch.New(dispatch.Config{Journal: j, Catalogue: cat, Prefix: cfg.Centre, Location: loc, Logger: log, Sector: trk.sectorOf})
	if err != nil {
		return err
	}
	authn, err := auth.New(auth.Config{Store: st.Auth, SessionTTL: cfg.SessionTTL})
	if err != nil {
		return err
	}
	ready := func(ctx context.Context) error { return nil }
	if st.Redis != nil {
		ready = func(ctx context.Context) error { return st.Redis.Ping(ctx).Err() }
	}
	if st.Redis != nil && cfg.Intake.ChatStore == nil {
		cfg.Intake.ChatStore = intake.NewRedisChatStore(st.Redis) // a webhook may reach any node
	}
	if st.Redis != nil && cfg.Intake.Media == nil {
		// Citizen files stay on the node that took them; the others fetch
		// them from it at the address they redirect video viewers to.
		self := cfg.Video.AdvertiseURL
		if self == "" {
			self = advertiseFromAddr(cfg.Addr)
		}
		cfg.Intake.Media = intake.NewRedisMediaRegistry(st.Redis, self)
	}
	if cfg.Intake.MediaDir == "" {
		cfg.Intake.MediaDir = filepath.Join(cfg.DataDir, "media")
	}
	vid, err := openVideo(ctx, cfg, st, svc, trk.tracker, log)
	if err != nil {
		return err
	}
	defer vid.srv.Close() // if start-up fails below; safe to call twice
	srv, err := web.New(web.Config{Dispatch: svc, Auth: authn, Logger: log, Metrics: metrics, AllowedOrigins: cfg.AllowedOrigins, Ready: ready, Intake: cfg.Intake,
		Tracker: trk.tracker, GIS: trk.web, Video: vid.srv, Cameras: vid.cams, VideoAudit: vid.audit})
	if err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		return err
	}
	defer svc.Close()
	defer vid.run(ctx, log)() // media closes and its views are journalled before the service closes
	trk.run(gctx)
	gisDone := make(chan struct{})
	go func() {
		defer close(gisDone)
		if err := srv.RunGIS(gctx); err != nil {
			log.Error("tracking watcher stopped", "err", err)
		}
	}()
	defer func() { stopTracking(); <-gisDone }()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another server running? use --addr)", cfg.Addr, err)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("kuzet serving", "addr", ln.Addr().String(), "centre", cfg.Centre)

	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight and draining WebSocket clients")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("requests still running at shutdown timeout", "err", err)
	}
	srv.Drain(sctx)
	log.Info("stopped")
	return nil
}
