package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twpayne/go-geom/encoding/geojson"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/gis"
	"github.com/kuzet/kuzet/internal/auth"
	"github.com/kuzet/kuzet/internal/jsonw"
)

// Live tracking in the server (issue 3). How data moves:
//
//	tracker app ─/ingest/osmand, /ingest/owntracks─▶ parse (gis) → device
//	   token ↔ device id → its unit → Tracker.Update
//	terminal ─POST /api/v1/units/{id}/position, positions socket─▶ own unit only
//	gateway ─POST /api/v1/positions/batch─▶ Tracker.UpdateBatch
//	Tracker.OnUpdate ─▶ Feed.Publish ─every 250 ms─▶ /api/v1/positions/stream
//	dispatch projection ─OnApplied─▶ unitSync (latest per unit, own
//	   goroutine, may block on Redis) → Tracker.SetUnit → Feed.Publish
//	Watcher.Check every second ─▶ dispatch geo alerts (journal) ─▶ /api/v1/stream
//
// Incidents get their sector through dispatch.Config.Sector (the node wires
// it to GISConfig.Sectors.Lookup).

// GISConfig is live tracking for the web layer. With Config.Tracker nil the
// gis endpoints answer 503.
type GISConfig struct {
	// Sectors are the patrol sectors; default: an empty index.
	Sectors *gis.SectorIndex
	// Feed fans positions out to map sockets; RunGIS runs it. The Tracker's
	// OnUpdate must publish to it (TrackerConfig{OnUpdate: feed.Publish}),
	// else maps see only status changes. Default: a new Feed.
	Feed *gis.Feed
	// ETA ranks recommendations; nil = straight line.
	ETA gis.ETAProvider
	// Watch tunes the watcher (StaleAfter, MaxAccuracy, CoverSectors, ...);
	// Units, Sectors and Emit are filled in here.
	Watch gis.WatcherConfig
	// RecommendMaxAge leaves out units whose last fix is older; default 30 min.
	RecommendMaxAge time.Duration
	// SaveSectors, if set, persists a sector set accepted by PUT
	// /api/v1/sectors (a file, or Redis for the other nodes).
	SaveSectors func(ctx context.Context, data []byte) error
	// MaxBatch bounds fixes per batch request; default 5000.
	MaxBatch int
	// DeviceCacheTTL is how long a resolved device token is trusted without
	// asking the auth store again; default 10 s (a revoked token stops
	// working within this time).
	DeviceCacheTTL time.Duration
}

// Limits on gis request bodies.
const (
	maxBatchBody    = 4 << 20
	maxPositionBody = 4 << 10
	maxTrackSpan    = 7 * 24 * time.Hour
)

// gisArea is the server's tracking state.
type gisArea struct {
	tr      *gis.Tracker
	sectors *gis.SectorIndex
	feed    *gis.Feed
	rec     *gis.Recommender
	cfg     GISConfig
	units   unitSync
	devices deviceCache
	sockets posSockets

	requests *prometheus.CounterVec // kuzet_position_requests_total{source,status}
	fixes    *prometheus.CounterVec // kuzet_position_fixes_total{source,result}
	socketsG prometheus.Gauge       // kuzet_position_sockets
}

// registerVec adds a tracking metric to the server's registry, or returns
// the one another server in the process registered first.
func registerVec[T prometheus.Collector](reg *prometheus.Registry, c T) T {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(T); ok {
				return old
			}
		}
	}
	return c
}

// counted records an ingest request's answer by source and status.
func (g *gisArea) counted(source string, w http.ResponseWriter) {
	status := http.StatusOK
	if sw, ok := w.(*statusWriter); ok {
		status = sw.status
	}
	g.requests.WithLabelValues(source, strconv.Itoa(status)).Inc()
}

// stored records fixes taken: applied ones moved a unit, older ones were
// kept out of the index as late.
func (g *gisArea) stored(source string, applied, older int) {
	if applied > 0 {
		g.fixes.WithLabelValues(source, "applied").Add(float64(applied))
	}
	if older > 0 {
		g.fixes.WithLabelValues(source, "older").Add(float64(older))
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Server) initGIS() {
	if s.cfg.Tracker == nil {
		return
	}
	c := s.cfg.GIS
	if c.Sectors == nil {
		c.Sectors = gis.NewSectorIndex()
	}
	g := &gisArea{tr: s.cfg.Tracker, sectors: c.Sectors, feed: c.Feed, cfg: c}
	if g.feed == nil {
		g.feed, _ = gis.NewFeed(gis.FeedConfig{})
	}
	if g.cfg.RecommendMaxAge <= 0 {
		g.cfg.RecommendMaxAge = 30 * time.Minute
	}
	if g.cfg.MaxBatch <= 0 {
		g.cfg.MaxBatch = 5000
	}
	if g.cfg.DeviceCacheTTL <= 0 {
		g.cfg.DeviceCacheTTL = 10 * time.Second
	}
	g.rec = &gis.Recommender{Units: g.tr.Index(), ETA: c.ETA, AvailableStatuses: g.tr.AvailableStatuses()}
	g.units.init()
	g.devices.m = map[string]deviceEntry{}
	reg := s.metrics.Registry
	g.requests = registerVec(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_position_requests_total",
		Help: "Position ingest requests by source (osmand, owntracks, terminal, batch) and HTTP status."}, []string{"source", "status"}))
	g.fixes = registerVec(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kuzet_position_fixes_total",
		Help: "Valid fixes taken by source; result applied (moved the unit) or older (late, kept out of the index)."}, []string{"source", "result"}))
	g.socketsG = registerVec(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "kuzet_position_sockets", Help: "Open positions WebSockets."}))
	s.gis = g
	s.svc.OnApplied(g.units.listen)
}

// gisRoutes lists the gis endpoints. The gis area is wired in this file.
func (s *Server) gisRoutes() []route {
	s.initGIS()
	staffField := roles(staff, field)
	return []route{
		{method: "GET", pattern: "/ingest/osmand", public: true, handler: s.ingestOsmAnd},
		{method: "POST", pattern: "/ingest/osmand", public: true, handler: s.ingestOsmAnd},
		{method: "POST", pattern: "/ingest/owntracks", public: true, handler: s.ingestOwnTracks},
		{method: "POST", pattern: "/api/v1/units/{id}/position", roles: field, handler: s.unitPosition},
		{method: "POST", pattern: "/api/v1/positions/batch", roles: roles(field, []auth.Role{auth.RoleGateway}), handler: s.positionBatch},
		{method: "GET", pattern: "/api/v1/units/{id}/track", roles: staffField, handler: s.unitTrack},
		{method: "GET", pattern: "/api/v1/positions", roles: staffField, handler: s.positions},
		{method: "GET", pattern: "/api/v1/positions/stream", public: true, handler: s.positionStream}, // authenticates itself like /api/v1/stream
		{method: "GET", pattern: "/api/v1/incidents/{id}/recommendations", roles: intake, handler: s.recommendations},
		{method: "GET", pattern: "/api/v1/cameras/near", roles: staff, handler: s.camerasNear},
		{method: "GET", pattern: "/api/v1/sectors", roles: everyone, handler: s.getSectors},
		{method: "PUT", pattern: "/api/v1/sectors", roles: management, handler: s.putSectors},
	}
}

// RunGIS keeps the tracker in step with the dispatch projection, runs the
// watcher (its alerts go into the journal) and the map feed, until ctx ends. Call it after the dispatch service has started:
// it first pushes every unit of the replayed projection to the tracker.
func (s *Server) RunGIS(ctx context.Context) error {
	g := s.gis
	if g == nil {
		return nil
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = g.feed.Run(ctx) }()
	s.svc.View(func(st *dispatch.State) {
		for _, u := range st.Units {
			g.units.put(unitInfo(u))
		}
	})
	wg.Add(1)
	go func() { defer wg.Done(); s.syncUnits(ctx) }()
	err := s.watch(ctx)
	wg.Wait()
	return err
}

// unitInfo is what the tracker needs to know about a dispatch unit.
func unitInfo(u *dispatch.Unit) gis.UnitInfo {
	return gis.UnitInfo{ID: u.ID, Agency: u.Agency, Kind: u.Kind, Status: string(u.Status),
		Capabilities: append([]string(nil), u.Capabilities...), Label: u.CallSign, Sector: u.HomeSector}
}

// unitSync carries unit changes from the dispatch listener (which must not
// block) to the goroutine that tells the tracker (which may wait for Redis).
// Only the latest attributes of each unit are kept, so it is bounded by the
// number of units.
type unitSync struct {
	mu      sync.Mutex
	pending map[string]gis.UnitInfo
	wake    chan struct{}
}

func (u *unitSync) init() {
	u.pending = map[string]gis.UnitInfo{}
	u.wake = make(chan struct{}, 1)
}

func (u *unitSync) put(info gis.UnitInfo) {
	u.mu.Lock()
	u.pending[info.ID] = info
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

func (u *unitSync) listen(r journalRecord, st *dispatch.State) {
	kind, id, _ := strings.Cut(r.Aggregate, ":")
	if kind != "unit" {
		return
	}
	if unit := st.Units[id]; unit != nil {
		u.put(unitInfo(unit))
	}
}

func (s *Server) syncUnits(ctx context.Context) {
	g := s.gis
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.units.wake:
		}
		g.units.mu.Lock()
		batch := g.units.pending
		g.units.pending = make(map[string]gis.UnitInfo, len(batch))
		g.units.mu.Unlock()
		failed := 0
		for id, info := range batch {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := g.tr.SetUnit(cctx, info)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, gis.ErrBadUnit) {
					s.log.Warn("unit not tracked", "unit", id, "err", err)
					continue
				}
				failed++
				g.units.mu.Lock()
				if _, newer := g.units.pending[id]; !newer {
					g.units.pending[id] = info
				}
				g.units.mu.Unlock()
				continue
			}
			if st, ok := g.tr.Unit(id); ok {
				g.feed.Publish(st) // status colours on the map change at once
			}
		}
		if failed > 0 {
			s.log.Warn("tracker did not take unit changes; retrying", "units", failed)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			select {
			case g.units.wake <- struct{}{}:
			default:
			}
		}
	}
}

// watch runs the watcher: each check's raised and cleared conditions become
// journal alerts. After the first check, tracking alerts left active by an
// earlier run whose condition no longer holds are cleared.
func (s *Server) watch(ctx context.Context) error {
	g := s.gis
	wc := g.cfg.Watch
	wc.Units, wc.Sectors = g.tr.Index(), g.sectors
	if len(wc.AvailableStatuses) == 0 {
		wc.AvailableStatuses = g.tr.AvailableStatuses()
	}
	if len(wc.WatchStatuses) == 0 {
		// Units off duty or out of service switch their terminals off.
		wc.WatchStatuses = []string{"available", "dispatched", "en_route", "on_scene", "transporting", "at_facility", "emergency"}
	}
	raised := map[string]bool{}
	wc.Emit = func(ev gis.Event) {
		kind, subject := geoAlert(ev)
		if kind == "" {
			return
		}
		raised[kind+":"+subject] = !ev.Cleared
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.emitGeo(cctx, ev, kind, subject, wc); err != nil && ctx.Err() == nil {
			s.log.Warn("tracking alert not recorded", "alert", kind+":"+subject, "cleared", ev.Cleared, "err", err)
		}
	}
	w, err := gis.NewWatcher(wc)
	if err != nil {
		return err
	}
	interval := wc.Interval
	if interval <= 0 {
		interval = time.Second
	}
	now := time.Now
	if wc.Now != nil {
		now = wc.Now
	}
	tk := time.NewTicker(interval)
	defer tk.Stop()
	first := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
		w.Check(now())
		if first {
			first = false
			for _, a := range s.svc.ActiveGeoAlerts() {
				if !raised[a.ID] {
					kind, subject, _ := strings.Cut(a.ID, ":")
					if err := s.svc.ClearGeoAlert(ctx, kind, subject, "resolved while not watched"); err != nil && ctx.Err() == nil {
						s.log.Warn("stale tracking alert not cleared", "alert", a.ID, "err", err)
					}
				}
			}
		}
	}
}

func geoAlert(ev gis.Event) (kind, subject string) {
	switch ev.Kind {
	case gis.EventLeftSector:
		return dispatch.AlertLeftSector, ev.UnitID
	case gis.EventSectorUncovered:
		return dispatch.AlertSectorUncovered, ev.SectorID
	case gis.EventStale:
		return dispatch.AlertSignalStale, ev.UnitID
	case gis.EventInaccurate:
		return dispatch.AlertFixInaccurate, ev.UnitID
	}
	return "", ""
}

func (s *Server) emitGeo(ctx context.Context, ev gis.Event, kind, subject string, wc gis.WatcherConfig) error {
	if ev.Cleared {
		return s.svc.ClearGeoAlert(ctx, kind, subject, "resolved")
	}
	switch ev.Kind {
	case gis.EventLeftSector:
		return s.svc.UnitLeftSector(ctx, ev.UnitID, ev.SectorID)
	case gis.EventSectorUncovered:
		name := ev.SectorID
		if sec, ok := s.gis.sectors.Get(ev.SectorID); ok {
			name = sec.Name
		}
		mu := make([]dispatch.MoveUp, len(ev.MoveUp))
		for i, c := range ev.MoveUp {
			mu[i] = dispatch.MoveUp{UnitID: c.ID, DistanceM: c.Distance}
		}
		return s.svc.SectorUncovered(ctx, ev.SectorID, name, mu)
	case gis.EventStale:
		age := time.Duration(0)
		if u, ok := s.gis.tr.Unit(ev.UnitID); ok && u.HasFix {
			age = ev.At.Sub(u.Fix.Time)
		}
		return s.svc.SignalStale(ctx, ev.UnitID, age)
	case gis.EventInaccurate:
		acc := 0.0
		if u, ok := s.gis.tr.Unit(ev.UnitID); ok {
			acc = u.Fix.Accuracy
		}
		limit := wc.MaxAccuracy
		if limit <= 0 {
			limit = 100
		}
		return s.svc.FixInaccurate(ctx, ev.UnitID, acc, limit)
	}
	return nil
}

// --- ingest -------------------------------------------------------------

// gisReady answers 503 when tracking is not configured.
func (s *Server) gisReady(w http.ResponseWriter, r *http.Request) bool {
	if s.gis == nil {
		s.writeError(w, r, errorf(http.StatusServiceUnavailable, "tracking_disabled", "live tracking is not enabled on this server"))
		return false
	}
	return true
}

// fixError maps gis errors to answers.
func fixError(err error) error {
	switch {
	case errors.Is(err, gis.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "%v", err)
	case errors.Is(err, gis.ErrFutureFix):
		return errorf(http.StatusBadRequest, "future_fix", "%v", err)
	case errors.Is(err, gis.ErrBadFix):
		return errorf(http.StatusBadRequest, "bad_fix", "%v", err)
	case errors.Is(err, gis.ErrUnknownUnit):
		return errorf(http.StatusNotFound, "unknown_unit", "%v; register the unit first (POST /api/v1/units)", err)
	case errors.Is(err, gis.ErrBadQuery):
		return errorf(http.StatusBadRequest, "bad_query", "%v", err)
	case errors.Is(err, gis.ErrBadGeoJSON):
		return errorf(http.StatusBadRequest, "bad_geojson", "%v", err)
	}
	return err
}

// readBody reads at most limit bytes of the body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than %d bytes", limit)
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "unreadable_body", "the body could not be read: %v", err)
	}
	return b, nil
}

// ingestOsmAnd serves the Traccar/OsmAnd protocol
// (https://www.traccar.org/osmand/): GET or POST with the fields in the
// query or a form body, or POST with the Traccar Client JSON body. Trackers
// cannot set headers, so the device token may come as ?token= as well as
// Authorization: Bearer.
func (s *Server) ingestOsmAnd(w http.ResponseWriter, r *http.Request) {
	if !s.gisReady(w, r) {
		return
	}
	defer s.gis.counted("osmand", w)
	var (
		fix gis.Fix
		err error
	)
	token := bearer(r)
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body []byte
		if body, err = readBody(w, r, gis.MaxPayloadBytes); err != nil {
			s.writeError(w, r, err)
			return
		}
		fix, err = gis.ParseOsmAndJSON(body)
		if token == "" {
			token = r.URL.Query().Get("token")
		}
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, gis.MaxPayloadBytes)
		if perr := r.ParseForm(); perr != nil {
			s.writeError(w, r, errorf(http.StatusBadRequest, "bad_form", "the query or form body could not be read: %v", perr))
			return
		}
		fix, err = gis.ParseOsmAndQuery(r.Form)
		if token == "" {
			token = r.Form.Get("token")
		}
	}
	if err != nil {
		s.writeError(w, r, fixError(err))
		return
	}
	p, err := s.deviceAuth(r.Context(), fix.DeviceID, token, "send the device token as ?token=<token> or Authorization: Bearer <token>")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	applied, err := s.gis.tr.Update(r.Context(), p.UnitID, fix)
	if err != nil {
		s.writeError(w, r, fixError(err))
		return
	}
	s.gis.stored("osmand", b2i(applied), 1-b2i(applied))
	w.WriteHeader(http.StatusOK)
}

// ingestOwnTracks serves OwnTracks in HTTP mode
// (https://owntracks.org/booklet/tech/http/): the app authenticates with
// HTTP basic auth, user = device id, password = device token. Messages that
// are not locations get 200 "[]" as the app expects; so do locations (the
// answer is the list of messages for the device, none here).
func (s *Server) ingestOwnTracks(w http.ResponseWriter, r *http.Request) {
	if !s.gisReady(w, r) {
		return
	}
	defer s.gis.counted("owntracks", w)
	user, token, ok := r.BasicAuth()
	if !ok {
		if token = bearer(r); token == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="kuzet"`)
			s.writeError(w, r, errorf(http.StatusUnauthorized, "unauthenticated", "set the OwnTracks connection's username to the device id and its password to the device token"))
			return
		}
	}
	body, err := readBody(w, r, gis.MaxPayloadBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	fix, err := gis.ParseOwnTracks(body)
	if errors.Is(err, gis.ErrNotLocation) {
		// Authenticate anyway, so a wrong setup is noticed at once.
		if _, aerr := s.deviceAuth(r.Context(), user, token, "set the password to the device token"); aerr != nil {
			s.writeError(w, r, aerr)
			return
		}
		writeRaw(w, "[]")
		return
	}
	if err != nil {
		s.writeError(w, r, fixError(err))
		return
	}
	if user != "" {
		// The device is who signed in; tid is only a two-letter label.
		fix.DeviceID = user
	} else if fix.DeviceID == "" {
		fix.DeviceID = r.Header.Get("X-Limit-D")
	}
	p, err := s.deviceAuth(r.Context(), fix.DeviceID, token, "set the password to the device token")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	applied, err := s.gis.tr.Update(r.Context(), p.UnitID, fix)
	if err != nil {
		s.writeError(w, r, fixError(err))
		return
	}
	s.gis.stored("owntracks", b2i(applied), 1-b2i(applied))
	writeRaw(w, "[]")
}

func writeRaw(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
}

// deviceAuth checks that token is the device token of deviceID and returns
// the device's principal (with its unit).
func (s *Server) deviceAuth(ctx context.Context, deviceID, token, how string) (auth.Principal, error) {
	deviceID = strings.ToLower(strings.TrimSpace(deviceID))
	if token == "" {
		return auth.Principal{}, errorf(http.StatusUnauthorized, "unauthenticated", "no device token; %s (issued by POST /api/v1/units/{id}/devices)", how)
	}
	p, err := s.gis.devices.resolve(ctx, s.auth, token, s.gis.cfg.DeviceCacheTTL)
	if err != nil {
		if errors.Is(err, auth.ErrBadToken) || errors.Is(err, auth.ErrExpired) {
			if deviceID != "" {
				if _, derr := s.auth.Device(ctx, deviceID); errors.Is(derr, auth.ErrUnknownDevice) {
					return auth.Principal{}, errorf(http.StatusUnauthorized, "unknown_device", "device %q is not registered; register it with POST /api/v1/units/{id}/devices and use the token it returns", deviceID)
				}
			}
			return auth.Principal{}, errorf(http.StatusUnauthorized, "invalid_token", "the token is not the token of device %q; %s", deviceID, how)
		}
		return auth.Principal{}, err
	}
	if p.Role != auth.RoleDevice {
		return auth.Principal{}, errorf(http.StatusUnauthorized, "device_token_required", "location ingest takes a device token, not a user session; issue one with POST /api/v1/units/{id}/devices")
	}
	if deviceID != "" && deviceID != p.Name {
		return auth.Principal{}, errorf(http.StatusForbidden, "device_mismatch", "the token belongs to device %q, but the position names device %q; configure the tracker's id as %q", p.Name, deviceID, p.Name)
	}
	if p.UnitID == "" {
		return auth.Principal{}, errorf(http.StatusForbidden, "no_unit", "device %q is not bound to a unit", p.Name)
	}
	return p, nil
}

// deviceCache remembers resolved device tokens for a short time: a tracker
// reporting every second should not cost two auth store reads (Redis round
// trips) per fix. Bounded: cleared when it reaches maxCachedDevices.
type deviceCache struct {
	mu sync.Mutex
	m  map[string]deviceEntry
}

type deviceEntry struct {
	p       auth.Principal
	expires time.Time
}

const maxCachedDevices = 100_000

func (c *deviceCache) resolve(ctx context.Context, a *auth.Authenticator, token string, ttl time.Duration) (auth.Principal, error) {
	key := auth.HashToken(token)
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.p, nil
	}
	p, err := a.Resolve(ctx, token)
	if err != nil {
		return p, err
	}
	if p.Role == auth.RoleDevice {
		c.mu.Lock()
		if len(c.m) >= maxCachedDevices {
			c.m = map[string]deviceEntry{}
		}
		c.m[key] = deviceEntry{p: p, expires: now.Add(ttl)}
		c.mu.Unlock()
	}
	return p, nil
}

// --- terminal positions -------------------------------------------------

// positionRequest is a fix from an officer terminal or a batch. Optional
// values left out are unknown.
type positionRequest struct {
	UnitID   string     `json:"unit_id,omitempty"`
	Lat      *float64   `json:"lat"`
	Lon      *float64   `json:"lon"`
	Time     *time.Time `json:"time,omitempty"`
	Speed    *float64   `json:"speed,omitempty"`    // m/s
	Heading  *float64   `json:"heading,omitempty"`  // degrees
	Altitude *float64   `json:"altitude,omitempty"` // metres
	Accuracy *float64   `json:"accuracy,omitempty"` // metres
	Battery  *float64   `json:"battery,omitempty"`  // percent
}

func (p *positionRequest) fix(device string) (gis.Fix, error) {
	if p.Lat == nil || p.Lon == nil {
		return gis.Fix{}, errorf(http.StatusBadRequest, "bad_fix", "lat and lon are required")
	}
	f := gis.Fix{DeviceID: device, Lat: *p.Lat, Lon: *p.Lon, Speed: gis.Unknown, Heading: gis.Unknown, Accuracy: gis.Unknown, Battery: gis.Unknown}
	if p.Time != nil {
		f.Time = *p.Time
	}
	opt := func(src *float64, dst *float64) {
		if src != nil {
			*dst = *src
		}
	}
	opt(p.Speed, &f.Speed)
	opt(p.Heading, &f.Heading)
	opt(p.Altitude, &f.Altitude)
	opt(p.Accuracy, &f.Accuracy)
	opt(p.Battery, &f.Battery)
	return f, nil
}

type positionAnswer struct {
	UnitID  string `json:"unit_id"`
	Applied bool   `json:"applied"` // false: older than the stored fix, ignored
}

// unitPosition serves POST /api/v1/units/{id}/position: a terminal reports
// its own unit's position. Dispatchers cannot: positions come from the
// field only.
func (s *Server) unitPosition(w http.ResponseWriter, r *http.Request) {
	if !s.gisReady(w, r) {
		return
	}
	defer s.gis.counted("terminal", w)
	id := r.PathValue("id")
	p := principal(r)
	if p.UnitID != id {
		s.writeError(w, r, errorf(http.StatusForbidden, "not_your_unit", "a terminal of unit %q may report only its own position, not unit %q's", p.UnitID, id))
		return
	}
	var in positionRequest
	if err := decode(r, maxPositionBody, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if in.UnitID != "" && in.UnitID != id {
		s.writeError(w, r, errorf(http.StatusBadRequest, "id_mismatch", "the body's unit_id %q differs from the URL's %q", in.UnitID, id))
		return
	}
	fix, err := in.fix(p.ID())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	applied, err := s.gis.tr.Update(r.Context(), id, fix)
	if err != nil {
		s.writeError(w, r, fixError(err))
		return
	}
	s.gis.stored("terminal", b2i(applied), 1-b2i(applied))
	writeJSON(w, http.StatusOK, positionAnswer{UnitID: id, Applied: applied})
}

type batchRequest struct {
	Fixes []positionRequest `json:"fixes"`
}

type batchAnswer struct {
	Received int      `json:"received"`
	Applied  int      `json:"applied"`  // newer than the stored fixes
	Rejected int      `json:"rejected"` // invalid or for unknown units
	Errors   []string `json:"errors,omitempty"`
}

// positionBatch serves POST /api/v1/positions/batch. A device or officer
// sends buffered fixes of its own unit; a gateway account (an AVL gateway
// or tracking server) relays many units. Invalid fixes are rejected one by one and
// reported; if none is valid the answer is 400 and nothing is stored.
func (s *Server) positionBatch(w http.ResponseWriter, r *http.Request) {
	if !s.gisReady(w, r) {
		return
	}
	defer s.gis.counted("batch", w)
	p := principal(r)
	var in batchRequest
	if err := decode(r, maxBatchBody, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(in.Fixes) == 0 || len(in.Fixes) > s.gis.cfg.MaxBatch {
		s.writeError(w, r, errorf(http.StatusBadRequest, "bad_batch", "send 1 to %d fixes in \"fixes\"", s.gis.cfg.MaxBatch))
		return
	}
	batch := make([]gis.UnitFix, 0, len(in.Fixes))
	for i := range in.Fixes {
		fr := &in.Fixes[i]
		unit := fr.UnitID
		if p.Role == auth.RoleOfficer || p.Role == auth.RoleDevice {
			if unit == "" {
				unit = p.UnitID
			}
			if unit != p.UnitID || unit == "" {
				s.writeError(w, r, errorf(http.StatusForbidden, "not_your_unit", "fix %d is for unit %q; a terminal of unit %q may report only its own unit (nothing was stored)", i, fr.UnitID, p.UnitID))
				return
			}
		} else if unit == "" {
			s.writeError(w, r, errorf(http.StatusBadRequest, "bad_fix", "fix %d has no unit_id (nothing was stored)", i))
			return
		}
		f, err := fr.fix(p.ID())
		if err != nil {
			s.writeError(w, r, errorf(http.StatusBadRequest, "bad_fix", "fix %d: lat and lon are required (nothing was stored)", i))
			return
		}
		batch = append(batch, gis.UnitFix{UnitID: unit, Fix: f})
	}
	n, err := s.gis.tr.UpdateBatch(r.Context(), batch)
	ans := batchAnswer{Received: len(batch), Applied: n}
	if err != nil {
		var errs []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		} else {
			errs = []error{err}
		}
		for _, e := range errs {
			if !errors.Is(e, gis.ErrBadFix) && !errors.Is(e, gis.ErrFutureFix) && !errors.Is(e, gis.ErrUnknownUnit) {
				s.writeError(w, r, err) // storage failed
				return
			}
			ans.Rejected++
			if len(ans.Errors) < 20 {
				ans.Errors = append(ans.Errors, e.Error())
			}
		}
		if ans.Rejected == len(batch) {
			s.writeError(w, r, errorf(http.StatusBadRequest, "bad_fix", "no fix in the batch is valid (nothing was stored); first: %v", errs[0]))
			return
		}
	}
	s.gis.stored("batch", n, len(batch)-ans.Rejected-n)
	writeJSON(w, http.StatusOK, ans)
}

// --- queries ------------------------------------------------------------

func parseTime(q string, name string, def time.Time) (time.Time, error) {
	if q == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339Nano, q)
	if err != nil {
		return time.Time{}, errorf(http.StatusBadRequest, "bad_time", "%s=%q must be an RFC 3339 time such as 2026-05-01T10:00:00Z", name, q)
	}
	return t, nil
}

// unitTrack serves GET /api/v1/units/{id}/track?from=&to= as a GeoJSON
// Feature with a LineString (default: the last hour).
func (s *Server) unitTrack(w http.ResponseWriter, r *http.Request) {
	if !s.gisReady(w, r) {
		return
	}
	id := r.PathValue("id")
	if u := ownUnit(r); u != "" && u != id {
		s.writeError(w, r, errorf(http.StatusForbidden, "forbidden", "a terminal of unit %s can only read its own track", u))
		return
	}
	if _, ok := s.gis.tr.Unit(id); !ok {
		if _, err := s.svc.Unit(id); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	now := time.Now().UTC()
	q := r.URL.Query()
	to, err := parseTime(q.Get("to"), "to", now)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	from, err := parseTime(q.Get("from"), "from", to.Add(-time.Hour))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if to.Before(from) || to.Sub(from) > maxTrackSpan {
		s.writeError(w, r, errorf(http.StatusBadRequest, "bad_range", "from must be before to, at most %s apart", maxTrackSpan))
		return
	}
	fixes, err := s.gis.tr.Track(r.Context(), id, from, to)
	if err != nil {
		s.writeError(w, r, fixError(err))
		return
	}
	b, err := gis.TrackGeoJSON(id, fixes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/geo+json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

type unitPosition struct {
	UnitID string  `json:"unit_id"`
	Fix    gis.Fix `json:"fix"`
}

// positions serves GET /api/v1/positions?at=: every unit's position at
// time at (from history), or now.
func (s *Server) positions(w http.ResponseWriter, r *http.Request) {
	if !s.gisReady(w, r) {
		return
	}
	own := ownUnit(r)
	var out []unitPosition
	at := r.URL.Query().Get("at")
	if at == "" {
		s.gis.tr.Index().Units(func(u gis.UnitState) bool {
			if u.HasFix && (own == "" || u.ID == own) {
				out = append(out, unitPosition{UnitID: u.ID, Fix: u.Fix})
			}
			return true
		})
	} else {
		t, err := parseTime(at, "at", time.Time{})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		fixes, err := s.gis.tr.PositionsAt(r.Context(), t)
		if err != nil {
			s.writeError(w, r, fixError(err))
			return
		}
		for _, uf := range fixes {
			if own == "" || uf.UnitID == own {
				out = append(out, unitPosition{UnitID: uf.UnitID, Fix: uf.Fix})
			}
		}
	}
	if out == nil {
		out = []unitPosition{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"at": at, "positions": out})
}

// recommendations serves GET /api/v1/incidents/{id}/recommendations.
func (s *Server) recommendations(w http.ResponseWriter, r *http.Request) {
	if !s.gisReady(w, r) {
		return
	}
	incID, loc, err := s.svc.IncidentLocation(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	k := 3
	if v := q.Get("k"); v != "" {
		if k, err = strconv.Atoi(v); err != nil || k < 1 || k > 20 {
			s.writeError(w, r, errorf(http.StatusBadRequest, "bad_k", "k must be a number from 1 to 20"))
			return
		}
	}
	var caps []string
	if v := q.Get("capabilities"); v != "" {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" {
				caps = append(caps, c)
			}
		}
	}
	if len(caps) > 20 {
		s.writeError(w, r, errorf(http.StatusBadRequest, "bad_capabilities", "at most 20 capabilities"))
		return
	}
	rp := recBufs.Get().(*[]gis.Recommendation)
	defer func() {
		clear(*rp) // drop references to unit strings
		if cap(*rp) <= 20 {
			recBufs.Put(rp)
		}
	}()
	recs, err := s.gis.rec.RecommendAppend(r.Context(), (*rp)[:0], gis.RecommendQuery{
		Point: gis.Point{Lat: loc.Lat, Lon: loc.Lon}, RequiredCapabilities: caps,
		Agency: q.Get("agency"), K: k, MaxAge: s.gis.cfg.RecommendMaxAge,
	})
	if err != nil {
		s.writeError(w, r, fixError(err))
		return
	}
	*rp = recs
	bp := answerBufs.Get().(*[]byte)
	*bp = appendRecommendations((*bp)[:0], incID, loc, recs)
	writeRawJSON(w, http.StatusOK, *bp)
	if cap(*bp) <= 64<<10 {
		answerBufs.Put(bp)
	}
}

// degDecimals is the precision of coordinates in hand-encoded answers:
// 1e-7° is about 1 cm.
const degDecimals = 7

// recBufs hold recommendations between ranking and encoding.
var recBufs = sync.Pool{New: func() any { s := make([]gis.Recommendation, 0, 20); return &s }}

// answerBufs are the buffers hand-encoded answers are built in.
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// appendRecommendations writes the recommendations answer: {incident_id,
// location, recommendations: [gis.Recommendation fields + pick, the
// dispatch.RecPick to send back in AssignRequest.recommendation]}, the
// JSON that encoding/json makes of those values with coordinates rounded to
// degDecimals and metres and seconds to 0.1 (TestRecommendationsJSON),
// written by hand because it is the answer dispatchers wait for most and
// reflection and shortest-float formatting were a fifth of its cost.
func appendRecommendations(b []byte, incidentID string, loc dispatch.Location, recs []gis.Recommendation) []byte {
	b = append(b, '{')
	b = jsonw.Key(b, "incident_id")
	b = jsonw.String(b, incidentID)
	b = jsonw.Key(b, "location")
	b = append(b, '{')
	b = jsonw.Key(b, "lat")
	b = jsonw.Fixed(b, loc.Lat, degDecimals)
	b = jsonw.Key(b, "lon")
	b = jsonw.Fixed(b, loc.Lon, degDecimals)
	if math.Round(loc.Accuracy*10) != 0 { // omitted when 0 (unknown), as written
		b = jsonw.Key(b, "accuracy_m")
		b = jsonw.Fixed(b, loc.Accuracy, 1)
	}
	for _, f := range [...]struct{ k, v string }{{"source", loc.Source}, {"address", loc.Address}, {"sector", loc.Sector}} {
		if f.v != "" {
			b = jsonw.Key(b, f.k)
			b = jsonw.String(b, f.v)
		}
	}
	b = append(b, '}')
	b = jsonw.Key(b, "recommendations")
	b = append(b, '[')
	for i := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRecommendation(b, &recs[i])
	}
	return append(b, ']', '}', '\n')
}

func appendRecommendation(b []byte, rc *gis.Recommendation) []byte {
	b = append(b, '{')
	b = jsonw.Key(b, "rank")
	b = jsonw.Int(b, int64(rc.Rank))
	b = jsonw.Key(b, "unit_id")
	b = jsonw.String(b, rc.UnitID)
	if rc.Label != "" {
		b = jsonw.Key(b, "label")
		b = jsonw.String(b, rc.Label)
	}
	b = jsonw.Key(b, "agency")
	b = jsonw.String(b, rc.Agency)
	b = jsonw.Key(b, "kind")
	b = jsonw.String(b, rc.Kind)
	b = jsonw.Key(b, "status")
	b = jsonw.String(b, rc.Status)
	b = jsonw.Key(b, "position")
	b = append(b, '{')
	b = jsonw.Key(b, "lat")
	b = jsonw.Fixed(b, rc.Position.Lat, degDecimals)
	b = jsonw.Key(b, "lon")
	b = jsonw.Fixed(b, rc.Position.Lon, degDecimals)
	b = append(b, '}')
	b = jsonw.Key(b, "distance_m")
	b = jsonw.Fixed(b, rc.DistanceM, 1)
	b = jsonw.Key(b, "eta")
	b = append(b, '{')
	b = jsonw.Key(b, "eta_s")
	b = jsonw.Fixed(b, rc.ETA.Seconds, 1)
	b = jsonw.Key(b, "distance_m")
	b = jsonw.Fixed(b, rc.ETA.Metres, 1)
	b = jsonw.Key(b, "source")
	b = jsonw.String(b, rc.ETA.Source)
	if rc.ETA.Fallback != "" {
		b = jsonw.Key(b, "fallback")
		b = jsonw.String(b, rc.ETA.Fallback)
	}
	b = append(b, '}')
	b = jsonw.Key(b, "capability_match")
	b = jsonw.Bool(b, rc.CapabilityOK)
	if len(rc.MissingCaps) > 0 {
		b = jsonw.Key(b, "missing_capabilities")
		b = append(b, '[')
		for i, c := range rc.MissingCaps {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonw.String(b, c)
		}
		b = append(b, ']')
	}
	b = jsonw.Key(b, "position_age_s")
	b = jsonw.Fixed(b, rc.PositionAgeS, 1)
	b = jsonw.Key(b, "position_time")
	b = jsonw.Time(b, rc.PositionTime)
	b = jsonw.Key(b, "position_stale")
	b = jsonw.Bool(b, rc.PositionStale)
	b = jsonw.Key(b, "accuracy_m")
	b = jsonw.Fixed(b, rc.AccuracyM, 1)
	b = jsonw.Key(b, "pick")
	b = append(b, '{')
	b = jsonw.Key(b, "rank")
	b = jsonw.Int(b, int64(rc.Rank))
	b = jsonw.Key(b, "distance_m")
	b = jsonw.Fixed(b, rc.DistanceM, 1)
	b = jsonw.Key(b, "eta_s")
	b = jsonw.Fixed(b, rc.ETA.Seconds, 1)
	if rc.ETA.Source != "" {
		b = jsonw.Key(b, "source")
		b = jsonw.String(b, rc.ETA.Source)
	}
	return append(b, '}', '}')
}

func floatParam(q map[string][]string, name string, def float64, required bool) (float64, error) {
	v := ""
	if vs := q[name]; len(vs) > 0 {
		v = vs[0]
	}
	if v == "" {
		if required {
			return 0, errorf(http.StatusBadRequest, "missing_"+name, "%s is required", name)
		}
		return def, nil
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, "bad_"+name, "%s=%q is not a number", name, v)
	}
	return x, nil
}

// camerasNear serves GET /api/v1/cameras/near?lat=&lon=&radius=&limit=.
func (s *Server) camerasNear(w http.ResponseWriter, r *http.Request) {
	if !s.gisReady(w, r) {
		return
	}
	q := r.URL.Query()
	lat, err := floatParam(q, "lat", 0, true)
	if err == nil {
		var lon, radius float64
		if lon, err = floatParam(q, "lon", 0, true); err == nil {
			if radius, err = floatParam(q, "radius", 500, false); err == nil {
				if radius <= 0 || radius > 50_000 {
					err = errorf(http.StatusBadRequest, "bad_radius", "radius must be 1..50000 metres")
				} else {
					var n int
					if n, err = limit(r, 20); err == nil {
						var hits []gis.CameraHit
						if hits, err = s.gis.tr.CamerasNear(gis.Point{Lat: lat, Lon: lon}, radius, n); err == nil {
							if hits == nil {
								hits = []gis.CameraHit{}
							}
							writeJSON(w, http.StatusOK, map[string]any{"cameras": hits})
							return
						}
						err = fixError(err)
					}
				}
			}
		}
	}
	if errors.Is(err, gis.ErrBadQuery) {
		err = errorf(http.StatusBadRequest, "bad_query", "%v", err)
	}
	s.writeError(w, r, err)
}

// getSectors serves GET /api/v1/sectors as a GeoJSON FeatureCollection.
func (s *Server) getSectors(w http.ResponseWriter, r *http.Request) {
	if !s.gisReady(w, r) {
		return
	}
	fc := geojson.FeatureCollection{Features: []*geojson.Feature{}}
	for _, sec := range s.gis.sectors.All() {
		fc.Features = append(fc.Features, &geojson.Feature{ID: sec.ID, Geometry: sec.Geom,
			Properties: map[string]any{"id": sec.ID, "name": sec.Name}})
	}
	b, err := json.Marshal(&fc)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("encode sectors: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/geo+json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// putSectors serves PUT /api/v1/sectors: a GeoJSON FeatureCollection that
// replaces all sectors, or nothing changes.
func (s *Server) putSectors(w http.ResponseWriter, r *http.Request) {
	if !s.gisReady(w, r) {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "application/geo+json") {
		s.writeError(w, r, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the sectors as application/geo+json, not %s", ct))
		return
	}
	body, err := readBody(w, r, gis.MaxGeoJSONBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Validate fully before persisting, persist before switching: a set
	// that cannot be saved is not half in use.
	if _, err := gis.NewSectorIndex().Load(body); err != nil {
		s.writeError(w, r, fixError(err))
		return
	}
	if save := s.gis.cfg.SaveSectors; save != nil {
		if err := save(r.Context(), body); err != nil {
			s.writeError(w, r, fmt.Errorf("save sectors: %w", err))
			return
		}
	}
	n, err := s.gis.sectors.Load(body)
	if err != nil {
		s.writeError(w, r, fixError(err))
		return
	}
	s.log.Info("sectors replaced", "sectors", n, "by", principal(r).ID())
	writeJSON(w, http.StatusOK, map[string]any{"sectors": n})
}
