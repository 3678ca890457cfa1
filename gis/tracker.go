package gis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kuzet/kuzet/internal/jsonw"
)

// Redis keys owned by this package (all under kuzet:gis:).
const (
	keyUnitsPrefix = "kuzet:gis:units:"          // GEO set per agency: every unit with a position
	keyAvailable   = "kuzet:gis:units-available" // GEO set: units whose status is available
	keyCameras     = "kuzet:gis:cameras"         // GEO set of cameras
	keyUnitInfo    = "kuzet:gis:unitinfo"        // hash unit id → UnitInfo JSON
	keyCameraInfo  = "kuzet:gis:camerainfo"      // hash camera id → Camera JSON
	keyHistPrefix  = "kuzet:gis:hist:"           // capped stream per unit, entry id = fix time ms; its top is the latest fix
	chanUpdates    = "kuzet:gis:updates"         // pub/sub: every node's applied changes
)

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	// Redis is the shared backend; nil runs embedded (in-process index and
	// ring-buffer history only).
	Redis *redis.Client
	// NodeID tells this node's own messages apart on the update channel;
	// default random.
	NodeID string
	// HistoryLen bounds the stored positions per unit (ring buffer or
	// XADD MAXLEN ~); default 1000 (≈ 17 min at 1 Hz).
	HistoryLen int
	// Rules validate incoming fixes (future skew, stale age, accuracy).
	Rules FixRules
	// AvailableStatuses are the statuses kept in the available-only GEO key
	// and used by the recommender; default ["available"].
	AvailableStatuses []string
	// OnUpdate, if set, is called after each applied fix, local or from
	// another node, outside all locks. It must not block: feed it to
	// Feed.Publish and Watcher.ObserveFix.
	OnUpdate func(UnitState)
	// BatchSize bounds fixes per Redis script call; default 1000.
	BatchSize int
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Tracker ties the index, history, cameras and the Redis backend together.
//
// Write path: Update/UpdateBatch validate, then (Redis) one Lua script per
// batch writes the GEO keys, the latest-fix hashes and the per-unit history
// stream only for fixes newer than the stored time, then the applied fixes
// go into the local index and are published on kuzet:gis:updates; every
// other node's Run applies them to its own index. Embedded mode writes the
// index and the ring buffers.
type Tracker struct {
	cfg   TrackerConfig
	ix    *Index
	cams  *CameraIndex
	hist  *memHistory // embedded only
	rdb   *redis.Client
	ps    *redis.PubSub
	log   *slog.Logger
	avail []string

	closeOnce sync.Once
	done      chan struct{}
	// self starts every update this node publishes ({"n":"<NodeID>"):
	// Run skips its own messages without decoding a thousand fixes.
	self string
}

// NewTracker validates cfg and, with Redis, subscribes to the update channel
// and then loads units, latest fixes and cameras from Redis, so no update is
// missed between load and follow (older duplicates are ignored by time).
func NewTracker(ctx context.Context, cfg TrackerConfig) (*Tracker, error) {
	if cfg.HistoryLen == 0 {
		cfg.HistoryLen = 1000
	}
	if cfg.HistoryLen < 1 || cfg.HistoryLen > 1_000_000 {
		return nil, fmt.Errorf("%w: HistoryLen %d outside 1..1000000", ErrBadConfig, cfg.HistoryLen)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 1000
	}
	if cfg.BatchSize < 1 {
		return nil, fmt.Errorf("%w: BatchSize %d", ErrBadConfig, cfg.BatchSize)
	}
	if len(cfg.AvailableStatuses) == 0 {
		cfg.AvailableStatuses = []string{"available"}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NodeID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.NodeID = hex.EncodeToString(b[:])
	}
	cfg.Rules = cfg.Rules.withDefaults()
	nodeJSON, _ := json.Marshal(cfg.NodeID)
	t := &Tracker{
		self:  `{"n":` + string(nodeJSON),
		cfg:   cfg,
		ix:    NewIndex(),
		cams:  NewCameraIndex(),
		rdb:   cfg.Redis,
		log:   cfg.Logger.With("component", "gis"),
		avail: cfg.AvailableStatuses,
		done:  make(chan struct{}),
	}
	if t.rdb == nil {
		t.hist = newMemHistory(cfg.HistoryLen)
		return t, nil
	}
	t.ps = t.rdb.Subscribe(ctx, chanUpdates)
	if _, err := t.ps.Receive(ctx); err != nil {
		_ = t.ps.Close()
		return nil, fmt.Errorf("gis: subscribe %s: %w", chanUpdates, err)
	}
	if err := t.load(ctx); err != nil {
		_ = t.ps.Close()
		return nil, err
	}
	return t, nil
}

func (t *Tracker) load(ctx context.Context) error {
	scan := func(key string, fn func(field, val string) error) error {
		it := t.rdb.HScan(ctx, key, 0, "", 1000).Iterator()
		for it.Next(ctx) {
			field := it.Val()
			if !it.Next(ctx) {
				break
			}
			if err := fn(field, it.Val()); err != nil {
				return fmt.Errorf("gis: load %s field %q: %w", key, field, err)
			}
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("gis: load %s: %w", key, err)
		}
		return nil
	}
	if err := scan(keyUnitInfo, func(_, v string) error {
		var u UnitInfo
		if err := json.Unmarshal([]byte(v), &u); err != nil {
			return err
		}
		return t.ix.SetUnit(u)
	}); err != nil {
		return err
	}
	// Latest fix of each unit: the top of its history stream.
	var ids []string
	t.ix.Units(func(u UnitState) bool { ids = append(ids, u.ID); return true })
	for start := 0; start < len(ids); start += 1000 {
		chunk := ids[start:min(start+1000, len(ids))]
		cmds := make([]*redis.XMessageSliceCmd, len(chunk))
		if _, err := t.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				cmds[i] = p.XRevRangeN(ctx, keyHistPrefix+id, "+", "-", 1)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("gis: load latest fixes: %w", err)
		}
		for i, c := range cmds {
			if msgs := c.Val(); len(msgs) == 1 {
				f, err := decodeHist(msgs[0])
				if err != nil {
					return err
				}
				t.ix.Update(chunk[i], f)
			}
		}
	}
	return scan(keyCameraInfo, func(_, v string) error {
		var c Camera
		if err := json.Unmarshal([]byte(v), &c); err != nil {
			return err
		}
		return t.cams.Set(c)
	})
}

// Index is the in-process unit index (for the recommender, the watcher and
// the feed's snapshots).
func (t *Tracker) Index() *Index { return t.ix }

// Cameras is the in-process camera index.
func (t *Tracker) Cameras() *CameraIndex { return t.cams }

// AvailableStatuses are the statuses that count as available.
func (t *Tracker) AvailableStatuses() []string { return t.avail }

// update is one message on kuzet:gis:updates.
type update struct {
	Node      string    `json:"n"`
	Fixes     []UnitFix `json:"f,omitempty"`
	Unit      *UnitInfo `json:"u,omitempty"`
	Remove    string    `json:"r,omitempty"`
	Camera    *Camera   `json:"c,omitempty"`
	RemoveCam string    `json:"rc,omitempty"`
}

func (t *Tracker) publish(ctx context.Context, u update) error {
	u.Node = t.cfg.NodeID
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return t.rdb.Publish(ctx, chanUpdates, b).Err()
}

// SetUnit registers or updates a unit's attributes (agency, kind, status,
// capabilities, sector). Call it from the dispatch projection on every
// status change.
func (t *Tracker) SetUnit(ctx context.Context, u UnitInfo) error {
	if err := u.validate(); err != nil {
		return err
	}
	if err := checkKeyPart(u.Agency); err != nil {
		return err
	}
	old, existed := t.ix.Unit(u.ID)
	if err := t.ix.SetUnit(u); err != nil {
		return err
	}
	if t.rdb == nil {
		return nil
	}
	b, _ := json.Marshal(u)
	_, err := t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, keyUnitInfo, u.ID, b)
		if existed && old.Agency != "" && old.Agency != u.Agency {
			p.ZRem(ctx, keyUnitsPrefix+old.Agency, u.ID)
		}
		if existed && old.HasFix {
			geo := &redis.GeoLocation{Name: u.ID, Longitude: old.Fix.Lon, Latitude: old.Fix.Lat}
			p.GeoAdd(ctx, keyUnitsPrefix+u.Agency, geo)
			if slices.Contains(t.avail, u.Status) {
				p.GeoAdd(ctx, keyAvailable, geo)
			} else {
				p.ZRem(ctx, keyAvailable, u.ID)
			}
		} else if !slices.Contains(t.avail, u.Status) {
			p.ZRem(ctx, keyAvailable, u.ID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gis: store unit %q: %w", u.ID, err)
	}
	return t.publish(ctx, update{Unit: &u})
}

// checkKeyPart keeps agency names usable inside Redis key names.
func checkKeyPart(s string) error {
	if len(s) > 32 {
		return fmt.Errorf("%w: agency %q longer than 32 bytes", ErrBadUnit, s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("%w: agency %q may hold only a-z, 0-9, _ and -", ErrBadUnit, s)
		}
	}
	return nil
}

// RemoveUnit deletes a unit, its position and its history.
func (t *Tracker) RemoveUnit(ctx context.Context, id string) error {
	old, existed := t.ix.Unit(id)
	t.ix.RemoveUnit(id)
	if t.rdb == nil {
		t.hist.remove(id)
		return nil
	}
	_, err := t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, keyUnitInfo, id)
		if existed && old.Agency != "" {
			p.ZRem(ctx, keyUnitsPrefix+old.Agency, id)
		}
		p.ZRem(ctx, keyAvailable, id)
		p.Del(ctx, keyHistPrefix+id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("gis: remove unit %q: %w", id, err)
	}
	return t.publish(ctx, update{Remove: id})
}

// Update validates f and stores it as unit unitID's position if it is newer
// than the stored one; it reports whether it did (false: an older or
// duplicate fix, ignored). The unit must have been registered with SetUnit
// (ErrUnknownUnit otherwise, nothing stored). f.DeviceID is kept as sent;
// binding devices to units is the caller's job.
func (t *Tracker) Update(ctx context.Context, unitID string, f Fix) (bool, error) {
	n, err := t.UpdateBatch(ctx, []UnitFix{{UnitID: unitID, Fix: f}})
	return n == 1, err
}

// UpdateBatch stores many fixes. Invalid fixes and fixes for unknown units
// are skipped and reported in the joined error; the valid ones are applied.
// It returns how many fixes were newer than the stored ones and applied.
func (t *Tracker) UpdateBatch(ctx context.Context, batch []UnitFix) (int, error) {
	now := t.cfg.Now()
	var errs []error
	valid := make([]UnitFix, 0, len(batch))
	for _, uf := range batch {
		if err := uf.Fix.Validate(now, t.cfg.Rules); err != nil {
			errs = append(errs, fmt.Errorf("unit %q: %w", uf.UnitID, err))
			continue
		}
		valid = append(valid, uf)
	}
	// Attributes for the Redis keys, and the unknown-unit check, under one
	// read lock.
	type attrs struct {
		agency string
		avail  bool
	}
	at := make([]attrs, len(valid))
	keep := valid[:0]
	t.ix.mu.RLock()
	for _, uf := range valid {
		e := t.ix.units[uf.UnitID]
		if e == nil || e.info.Agency == "" {
			errs = append(errs, fmt.Errorf("%w: %q; register it with SetUnit first", ErrUnknownUnit, uf.UnitID))
			continue
		}
		at[len(keep)] = attrs{e.info.Agency, slices.Contains(t.avail, e.info.Status)}
		keep = append(keep, uf)
	}
	t.ix.mu.RUnlock()
	valid = keep
	if len(valid) == 0 {
		return 0, errors.Join(errs...)
	}

	var applied []bool
	if t.rdb == nil {
		applied = t.ix.UpdateBatch(valid, nil)
		t.hist.addBatch(valid, applied)
	} else {
		applied = make([]bool, 0, len(valid))
		encoded := make([][]byte, len(valid))
		for start := 0; start < len(valid); start += t.cfg.BatchSize {
			end := min(start+t.cfg.BatchSize, len(valid))
			args := make([]any, 0, 1+8*(end-start))
			args = append(args, t.cfg.HistoryLen)
			for i := start; i < end; i++ {
				f := valid[i].Fix
				js, _ := json.Marshal(f)
				encoded[i] = js
				av := "0"
				if at[i].avail {
					av = "1"
				}
				// Key names and the stream id are built here, not in Lua,
				// where every string concatenation allocates.
				args = append(args, keyHistPrefix+valid[i].UnitID, valid[i].UnitID,
					strconv.FormatInt(f.Time.UnixMilli(), 10)+"-*",
					strconv.FormatFloat(f.Lon, 'f', -1, 64), strconv.FormatFloat(f.Lat, 'f', -1, 64),
					keyUnitsPrefix+at[i].agency, av, js)
			}
			res, err := storeFixes.Run(ctx, t.rdb, nil, args...).Int64Slice()
			if err != nil {
				errs = append(errs, fmt.Errorf("gis: store %d fixes in Redis: %w", end-start, err))
				// The local index still gets them: it is what queries read.
				for i := start; i < end; i++ {
					applied = append(applied, true)
				}
				continue
			}
			for _, r := range res {
				applied = append(applied, r == 1)
			}
		}
		// Redis decided which fixes are newest across nodes; the local index
		// applies the same rule again (a newer remote fix may be here already).
		pub := valid[:0:0]
		// The update message is assembled from the fix encodings already
		// made for the script: it decodes as json.Marshal(update{...}) would.
		msg := append(make([]byte, 0, 64+len(valid)*160), `{"n":`...)
		msg = jsonw.String(msg, t.cfg.NodeID)
		msg = append(msg, `,"f":[`...)
		for i := range valid {
			if applied[i] {
				if len(pub) > 0 {
					msg = append(msg, ',')
				}
				msg = append(msg, `{"u":`...)
				msg = jsonw.String(msg, valid[i].UnitID)
				msg = append(msg, `,"f":`...)
				msg = append(msg, encoded[i]...)
				msg = append(msg, '}')
				pub = append(pub, valid[i])
			}
		}
		msg = append(msg, "]}"...)
		applied = t.ix.UpdateBatch(pub, applied[:0])
		if len(pub) > 0 {
			if err := t.rdb.Publish(ctx, chanUpdates, msg).Err(); err != nil {
				errs = append(errs, fmt.Errorf("gis: publish fixes: %w", err))
			}
		}
		valid = pub
	}
	n := 0
	for i, ok := range applied {
		if ok {
			n++
			if t.cfg.OnUpdate != nil {
				if st, found := t.ix.Unit(valid[i].UnitID); found {
					t.cfg.OnUpdate(st)
				}
			}
		}
	}
	return n, errors.Join(errs...)
}

// storeFixes applies a batch of fixes atomically, each only if newer than
// the unit's stored history: the history stream's entry ids are the fix
// times (ms-seq), and XADD refuses an id not above the stream's top, so the
// stream itself is the per-unit "latest time" that makes a late fix (even
// one sent through another node) never move a unit backwards. Accepted
// fixes then go into the GEO keys with one GEOADD per key for the batch.
// ARGV: history length, then per fix: stream key, unit id, stream id
// "<ms>-*", lon, lat, agency GEO key, available "1"/"0", fix JSON. Returns
// 1/0 per fix.
// Keys are built in the script: this needs a single Redis, not a cluster.
var storeFixes = redis.NewScript(`
local hl = ARGV[1]
local n = (#ARGV - 1) / 8
local av, rm, geo = {}, {}, {}
local out = {}
for k = 1, n do
  local i = 2 + (k-1)*8
  local id = ARGV[i+1]
  local r = redis.pcall('XADD', ARGV[i], 'MAXLEN', '~', hl, ARGV[i+2], 'f', ARGV[i+7])
  if type(r) == 'table' and r.err then
    out[k] = 0
  else
    local lon, lat, gkey = ARGV[i+3], ARGV[i+4], ARGV[i+5]
    local g = geo[gkey]
    if not g then g = {}; geo[gkey] = g end
    g[#g+1] = lon; g[#g+1] = lat; g[#g+1] = id
    if ARGV[i+6] == '1' then
      av[#av+1] = lon; av[#av+1] = lat; av[#av+1] = id
    else
      rm[#rm+1] = id
    end
    out[k] = 1
  end
end
-- One command per key for the whole batch (unpack in chunks: Lua's C
-- stack holds ~8000 values). A unit twice in one batch: the later, newer
-- position comes later in the arguments and wins.
local function bulk(cmd, key, arr)
  for a = 1, #arr, 1500 do
    redis.call(cmd, key, unpack(arr, a, math.min(a + 1499, #arr)))
  end
end
for gkey, g in pairs(geo) do bulk('GEOADD', gkey, g) end
bulk('GEOADD', '` + keyAvailable + `', av)
bulk('ZREM', '` + keyAvailable + `', rm)
return out
`)

// Nearest returns the K nearest units matching q (see NearestQuery).
func (t *Tracker) Nearest(q NearestQuery) ([]Candidate, error) { return t.ix.Nearest(q) }

// Within returns the units matching q within q.Radius, nearest first.
func (t *Tracker) Within(q NearestQuery) ([]Candidate, error) { return t.ix.Within(q) }

// Unit returns a unit's attributes and latest fix.
func (t *Tracker) Unit(id string) (UnitState, bool) { return t.ix.Unit(id) }

// Track returns unit id's stored fixes with from ≤ time ≤ to, oldest first.
// Encode with TrackGeoJSON.
func (t *Tracker) Track(ctx context.Context, id string, from, to time.Time) ([]Fix, error) {
	if to.Before(from) {
		return nil, fmt.Errorf("%w: track end %s before start %s", ErrBadQuery, to, from)
	}
	if t.rdb == nil {
		return t.hist.track(id, from, to), nil
	}
	msgs, err := t.rdb.XRangeN(ctx, keyHistPrefix+id,
		strconv.FormatInt(from.UnixMilli(), 10), strconv.FormatInt(to.UnixMilli(), 10)+"-18446744073709551615",
		int64(t.cfg.HistoryLen)*2).Result()
	if err != nil {
		return nil, fmt.Errorf("gis: read history of %q: %w", id, err)
	}
	out := make([]Fix, 0, len(msgs))
	for _, m := range msgs {
		f, err := decodeHist(m)
		if err != nil {
			return nil, err
		}
		if !f.Time.Before(from) && !f.Time.After(to) {
			out = append(out, f)
		}
	}
	return out, nil
}

func decodeHist(m redis.XMessage) (Fix, error) {
	var f Fix
	s, _ := m.Values["f"].(string)
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		return f, fmt.Errorf("gis: history entry %s: %w", m.ID, err)
	}
	return f, nil
}

// PositionsAt returns, for every unit with history, its last stored fix at
// or before time at (units whose history starts later are left out),
// sorted by unit id.
func (t *Tracker) PositionsAt(ctx context.Context, at time.Time) ([]UnitFix, error) {
	if t.rdb == nil {
		return t.hist.at(at), nil
	}
	var ids []string
	t.ix.Units(func(u UnitState) bool { ids = append(ids, u.ID); return true })
	end := strconv.FormatInt(at.UnixMilli(), 10) + "-18446744073709551615"
	out := make([]UnitFix, 0, len(ids))
	for start := 0; start < len(ids); start += 1000 {
		chunk := ids[start:min(start+1000, len(ids))]
		cmds := make([]*redis.XMessageSliceCmd, len(chunk))
		_, err := t.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				cmds[i] = p.XRevRangeN(ctx, keyHistPrefix+id, end, "-", 1)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("gis: read positions at %s: %w", at.Format(time.RFC3339), err)
		}
		for i, c := range cmds {
			msgs, _ := c.Result()
			if len(msgs) == 0 {
				continue
			}
			f, err := decodeHist(msgs[0])
			if err != nil {
				return nil, err
			}
			out = append(out, UnitFix{UnitID: chunk[i], Fix: f})
		}
	}
	sortUnitFixes(out)
	return out, nil
}

// SetCamera adds or moves a camera.
func (t *Tracker) SetCamera(ctx context.Context, c Camera) error {
	if err := t.cams.Set(c); err != nil {
		return err
	}
	if t.rdb == nil {
		return nil
	}
	b, _ := json.Marshal(c)
	_, err := t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.GeoAdd(ctx, keyCameras, &redis.GeoLocation{Name: c.ID, Longitude: c.Lon, Latitude: c.Lat})
		p.HSet(ctx, keyCameraInfo, c.ID, b)
		return nil
	})
	if err != nil {
		return fmt.Errorf("gis: store camera %q: %w", c.ID, err)
	}
	return t.publish(ctx, update{Camera: &c})
}

// RemoveCamera deletes a camera.
func (t *Tracker) RemoveCamera(ctx context.Context, id string) error {
	t.cams.Remove(id)
	if t.rdb == nil {
		return nil
	}
	_, err := t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, keyCameras, id)
		p.HDel(ctx, keyCameraInfo, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("gis: remove camera %q: %w", id, err)
	}
	return t.publish(ctx, update{RemoveCam: id})
}

// CamerasNear returns cameras within radius metres of p, nearest first.
func (t *Tracker) CamerasNear(p Point, radius float64, limit int) ([]CameraHit, error) {
	return t.cams.Near(p, radius, limit)
}

// Run follows the other nodes' updates until ctx ends or Close is called.
// Embedded, it only waits. Fix messages lost while disconnected are
// acceptable (positions are durability class B: the next fix replaces them).
func (t *Tracker) Run(ctx context.Context) error {
	if t.rdb == nil {
		select {
		case <-ctx.Done():
		case <-t.done:
		}
		return nil
	}
	ch := t.ps.Channel(redis.WithChannelSize(4096))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.done:
			return nil
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			t.apply(m.Payload)
		}
	}
}

func (t *Tracker) apply(payload string) {
	if strings.HasPrefix(payload, t.self) {
		return // our own: already applied locally
	}
	var u update
	if err := json.Unmarshal([]byte(payload), &u); err != nil {
		t.log.Warn("bad update message", "err", err)
		return
	}
	if u.Node == t.cfg.NodeID {
		return
	}
	switch {
	case len(u.Fixes) > 0:
		applied := t.ix.UpdateBatch(u.Fixes, nil)
		if t.cfg.OnUpdate != nil {
			for i, ok := range applied {
				if ok {
					if st, found := t.ix.Unit(u.Fixes[i].UnitID); found {
						t.cfg.OnUpdate(st)
					}
				}
			}
		}
	case u.Unit != nil:
		if err := t.ix.SetUnit(*u.Unit); err != nil {
			t.log.Warn("bad unit in update", "err", err)
		}
	case u.Remove != "":
		t.ix.RemoveUnit(u.Remove)
	case u.Camera != nil:
		if err := t.cams.Set(*u.Camera); err != nil {
			t.log.Warn("bad camera in update", "err", err)
		}
	case u.RemoveCam != "":
		t.cams.Remove(u.RemoveCam)
	}
}

// Close stops following and releases the subscription. It does not close
// the Redis client (the caller owns it).
func (t *Tracker) Close() error {
	var err error
	t.closeOnce.Do(func() {
		close(t.done)
		if t.ps != nil {
			err = t.ps.Close()
		}
	})
	return err
}
