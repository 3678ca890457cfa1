// Package gis is Kuzet's live-tracking and geography domain: position fix
// parsing and validation, the spatial index of units and cameras, bounded
// position history, patrol sectors and geofence events, ETA providers, the
// nearest-available recommendation, and the core of the map fan-out. It has
// no HTTP or WebSocket code: web/ calls it.
//
// # How data moves
//
//	device ──HTTP──▶ web: ParseOsmAndQuery / ParseOsmAndJSON / ParseOwnTracks
//	                 (size limits, ranges) → bind device to unit (auth layer)
//	       ──▶ Tracker.Update / UpdateBatch (validate time: far future rejected,
//	           old marked Stale; unit must be registered; older fixes ignored)
//	           ├─ embedded: Index (R-tree) + ring-buffer history
//	           └─ Redis: one Lua script per batch → capped per-unit stream and
//	              GEO keys (only fixes newer than the stream's top) →
//	              local Index → PUBLISH kuzet:gis:updates → every other node's
//	              Tracker.Run applies them to its own Index
//	       ──▶ TrackerConfig.OnUpdate(UnitState) → Feed.Publish (map fan-out)
//
//	dispatch projection ──▶ Tracker.SetUnit(UnitInfo) on every status change
//	incident ──▶ Recommender.Recommend → Index.Nearest (3×K available) →
//	             ETAProvider (StraightLine or OSRM, falling back with reason)
//	             → ranked []Recommendation with reasons
//	Watcher.Run ──every second──▶ Index + SectorIndex → Emit(Event) (raised
//	             once, cleared once): unit left sector, sector uncovered (with
//	             units that could move up), signal stale, fix inaccurate
//	Feed.Run ──every 250 ms──▶ changed units → one JSON batch per distinct
//	             (viewport, filter) → shared by its subscribers' bounded queues;
//	             a full queue drops the subscriber (Subscription.Done)
//
// # API for callers (web/, cmd/)
//
//	tr, err := gis.NewTracker(ctx, gis.TrackerConfig{Redis: rdb /* nil = embedded */,
//	        HistoryLen: 1000, Rules: gis.FixRules{StaleAfter: 5*time.Minute},
//	        OnUpdate: feed.Publish})
//	go tr.Run(ctx); defer tr.Close()
//	tr.SetUnit(ctx, gis.UnitInfo{ID, Agency, Kind, Status, Capabilities, Sector})
//	tr.RemoveUnit(ctx, id)
//	applied, err := tr.Update(ctx, unitID, fix)          // (bool, error)
//	n, err := tr.UpdateBatch(ctx, []gis.UnitFix{...})     // valid ones applied, errors joined
//	cands, err := tr.Nearest(gis.NearestQuery{Point, K, Statuses, Agency, Capabilities, MaxAge})
//	cands, err := tr.Within(gis.NearestQuery{Point, Radius, ...})
//	fixes, err := tr.Track(ctx, unitID, from, to); geojson, err := gis.TrackGeoJSON(unitID, fixes)
//	at, err := tr.PositionsAt(ctx, t)                     // []UnitFix, one per unit
//	tr.SetCamera(ctx, gis.Camera{...}); hits, err := tr.CamerasNear(p, metres, limit)
//
//	sectors := gis.NewSectorIndex(); n, err := sectors.Load(geojsonBytes) // all or nothing
//	s, ok := sectors.Lookup(p)
//	w, err := gis.NewWatcher(gis.WatcherConfig{Units: tr.Index(), Sectors: sectors, Emit: journal})
//	go w.Run(ctx)
//	rec := &gis.Recommender{Units: tr.Index(), ETA: osrmOrNil}
//	recs, err := rec.Recommend(ctx, gis.RecommendQuery{Point, RequiredCapabilities, Agency, K, MaxAge})
//	feed, err := gis.NewFeed(gis.FeedConfig{}); go feed.Run(ctx)
//	sub, err := feed.Subscribe(gis.FeedFilter{BBox, Agency, Statuses})
//	select { case b := <-sub.C: write b; case <-sub.Done(): close socket }
//
// Ingest endpoints map errors with errors.Is: ErrTooLarge → 413; ErrBadFix,
// ErrFutureFix → 400; ErrUnknownUnit → 404/403; ErrNotLocation (OwnTracks
// lwt, transition, …) → 200 with body "[]". Cap bodies with
// http.MaxBytesReader(MaxPayloadBytes) before parsing.
//
// # Units and conventions
//
// Fix.Speed is m/s (OsmAnd query speed is knots, OwnTracks vel km/h, Traccar
// JSON m/s: the parsers convert). Unknown speed, heading, accuracy and
// battery are -1 (Unknown), not NaN, so fixes always encode to JSON.
// Distances are great-circle (haversine, mean Earth radius 6371008.8 m).
// GeoJSON positions are [longitude, latitude] (RFC 7946 §3.1.1).
//
// # Redis keys (all kuzet:gis:…)
//
//	units:<agency>     GEO set of every unit with a position
//	units-available    GEO set of units whose status is available
//	cameras            GEO set of cameras; camerainfo: hash id → Camera JSON
//	unitinfo           hash id → UnitInfo JSON
//	hist:<unit>        stream, XADD MAXLEN ~ HistoryLen, entry id = fix time
//	                   ms; its top entry is the unit's latest fix, and XADD
//	                   refusing a smaller id is what rejects late fixes
//	updates            pub/sub channel of applied changes (positions are
//	                   durability class B: a message lost during a reconnect is
//	                   replaced by the next fix)
//
// The store script builds key names itself, so it needs one Redis (or a
// replicated primary), not Redis Cluster.
//
// # Locks
//
// Index.mu (RWMutex) guards the unit R-tree and map; memHistory.mu the rings;
// CameraIndex.mu the cameras; Feed.mu pending updates and subscriber groups.
// None is held while taking another, and no callback (OnUpdate, Emit) runs
// under a lock. SectorIndex is lock-free (atomic pointer swap on Load).
// Watcher state is owned by the goroutine running Check.
package gis
