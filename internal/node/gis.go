package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kuzet/kuzet/gis"
	"github.com/kuzet/kuzet/web"
)

// Redis keys of the sector set shared by all nodes (gis owns kuzet:gis:*).
const (
	keySectors        = "kuzet:gis:sectors"         // the GeoJSON of the last accepted set
	keySectorsVersion = "kuzet:gis:sectors-version" // INCR on every change; nodes poll it
	sectorsFileName   = "sectors.geojson"           // embedded: last set accepted by PUT /api/v1/sectors
	sectorPoll        = 2 * time.Second
)

// tracking is the gis side of a node: tracker, sectors, map feed, ETA.
type tracking struct {
	tracker *gis.Tracker
	sectors *gis.SectorIndex
	feed    *gis.Feed
	web     web.GISConfig
	rdb     *redis.Client
	log     *slog.Logger
	wg      sync.WaitGroup
}

// openTracking creates the tracker (on Redis when the storage is Redis,
// embedded otherwise) and loads the sectors: the --sectors file if given
// (saved for the other nodes in Redis mode), else the last set saved by
// PUT /api/v1/sectors.
func openTracking(ctx context.Context, cfg Config, st *Storage, log *slog.Logger) (*tracking, error) {
	if cfg.MapInterval <= 0 {
		// 100 ms, not 250: a fix waits for the next flush, so the interval
		// is the floor of the map's p99 delay (target 250 ms); measured in
		// web/gis_bench_test.go BenchmarkGISFanout.
		cfg.MapInterval = 100 * time.Millisecond
	}
	feed, err := gis.NewFeed(gis.FeedConfig{Interval: cfg.MapInterval})
	if err != nil {
		return nil, err
	}
	tr, err := gis.NewTracker(ctx, gis.TrackerConfig{
		Redis: st.Redis, OnUpdate: feed.Publish, Logger: log,
		Rules: gis.FixRules{StaleAfter: cfg.StaleAfter},
	})
	if err != nil {
		return nil, fmt.Errorf("tracking: %w", err)
	}
	t := &tracking{tracker: tr, sectors: gis.NewSectorIndex(), feed: feed, rdb: st.Redis, log: log.With("component", "gis")}
	t.web = web.GISConfig{Sectors: t.sectors, Feed: feed, Watch: gis.WatcherConfig{StaleAfter: cfg.StaleAfter, MaxAccuracy: cfg.MaxAccuracy}}
	if cfg.OSRMURL != "" {
		osrm, err := gis.NewOSRM(gis.OSRMConfig{BaseURL: cfg.OSRMURL})
		if err != nil {
			tr.Close()
			return nil, fmt.Errorf("--osrm: %w", err)
		}
		t.web.ETA = osrm
	}
	if st.Redis != nil {
		t.web.SaveSectors = t.saveRedis
	} else {
		path := filepath.Join(cfg.DataDir, sectorsFileName)
		t.web.SaveSectors = func(_ context.Context, data []byte) error { return writeFileAtomic(path, data) }
	}
	if err := t.loadSectors(ctx, cfg); err != nil {
		tr.Close()
		return nil, err
	}
	return t, nil
}

func (t *tracking) loadSectors(ctx context.Context, cfg Config) error {
	var (
		data []byte
		from string
		err  error
	)
	switch {
	case cfg.SectorsFile != "":
		if data, err = os.ReadFile(cfg.SectorsFile); err != nil {
			return fmt.Errorf("--sectors: %w", err)
		}
		from = cfg.SectorsFile
	case t.rdb != nil:
		data, err = t.rdb.Get(ctx, keySectors).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tracking: read sectors from Redis: %w", err)
		}
		from = "Redis"
	default:
		path := filepath.Join(cfg.DataDir, sectorsFileName)
		if data, err = os.ReadFile(path); errors.Is(err, os.ErrNotExist) {
			return nil
		} else if err != nil {
			return fmt.Errorf("tracking: %w", err)
		}
		from = path
	}
	n, err := t.sectors.Load(data)
	if err != nil {
		return fmt.Errorf("sectors from %s: %w", from, err)
	}
	if cfg.SectorsFile != "" && t.rdb != nil {
		if err := t.saveRedis(ctx, data); err != nil {
			return err
		}
	}
	t.log.Info("sectors loaded", "sectors", n, "from", from)
	return nil
}

// saveRedis stores a sector set for every node; each polls the version.
func (t *tracking) saveRedis(ctx context.Context, data []byte) error {
	_, err := t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, keySectors, data, 0)
		p.Incr(ctx, keySectorsVersion)
		return nil
	})
	if err != nil {
		return fmt.Errorf("tracking: save sectors to Redis: %w", err)
	}
	return nil
}

// run starts the tracker's follower and (Redis) the sector follower; the
// web server's RunGIS runs the feed and the watcher.
func (t *tracking) run(ctx context.Context) {
	t.wg.Add(1)
	go func() { defer t.wg.Done(); _ = t.tracker.Run(ctx) }()
	if t.rdb != nil {
		t.wg.Add(1)
		go func() { defer t.wg.Done(); t.followSectors(ctx) }()
	}
}

// followSectors reloads the sectors when another node replaced them.
func (t *tracking) followSectors(ctx context.Context) {
	seen, _ := t.rdb.Get(ctx, keySectorsVersion).Int64()
	tk := time.NewTicker(sectorPoll)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		v, err := t.rdb.Get(ctx, keySectorsVersion).Int64()
		if err != nil || v == seen {
			continue
		}
		data, err := t.rdb.Get(ctx, keySectors).Bytes()
		if err != nil {
			continue
		}
		if n, err := t.sectors.Load(data); err != nil {
			t.log.Error("sectors in Redis do not load; keeping the previous set", "err", err)
		} else {
			t.log.Info("sectors reloaded", "sectors", n, "version", v)
		}
		seen = v
	}
}

func (t *tracking) close() {
	t.wg.Wait()
	_ = t.tracker.Close()
}

// sectorOf names the sector containing a point, for dispatch.Config.Sector.
func (t *tracking) sectorOf(lat, lon float64) string {
	if s, ok := t.sectors.Lookup(gis.Point{Lat: lat, Lon: lon}); ok {
		return s.ID
	}
	return ""
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".sectors-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
