package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestTrackingOnRedis runs two whole nodes on a real redis-server, the
// first with a --sectors file: a device posts OsmAnd fixes to node A, the
// position is in Redis GEO keys and in node B's API and reaches a map
// socket on node B; a unit leaving its sector is alerted once in the shared
// journal although both nodes watch it, and cleared once when it returns;
// an incident gets its sector, and sectors replaced through node A reach
// node B.
func TestTrackingOnRedis(t *testing.T) {
	rs, rdb := redisWithSupervisor(t)
	ctx := context.Background()
	sectors := filepath.Join(t.TempDir(), "sectors.geojson")
	os.WriteFile(sectors, []byte(`{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"S1","name":"Алмалы"},
	 "geometry":{"type":"Polygon","coordinates":[[[76.90,43.22],[76.96,43.22],[76.96,43.26],[76.90,43.26],[76.90,43.22]]]}}]}`), 0o600)
	ns := newNodes(t)
	cfg := Config{RedisURL: rs.URL(), Centre: "ALA", TimeZone: "Asia/Almaty", StaleAfter: time.Minute}
	cfgA := cfg
	cfgA.SectorsFile = sectors
	nodeA, nodeB := ns.start(cfgA), ns.start(cfg)
	base := nodeA
	call := func(method, path, tok string, body any) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	st, b := call("POST", "/api/v1/sessions", "", map[string]string{"username": "sup", "password": "supervisor-password"})
	var ses struct{ Token string }
	json.Unmarshal(b, &ses)
	if st != 201 || ses.Token == "" {
		t.Fatalf("sign in: %d %s", st, b)
	}
	tok := ses.Token
	if st, b := call("POST", "/api/v1/units", tok, map[string]any{"id": "P1", "call_sign": "Беркут-1", "agency": "police", "kind": "car"}); st != 201 {
		t.Fatalf("unit: %d %s", st, b)
	}
	if st, b := call("POST", "/api/v1/units/P1/shift", tok, map[string]any{"on_shift": true}); st != 200 {
		t.Fatalf("shift: %d %s", st, b)
	}
	st, b = call("POST", "/api/v1/units/P1/devices", tok, map[string]any{"id": "tracker-1"})
	var dev struct{ Token string }
	json.Unmarshal(b, &dev)
	if st != 201 || dev.Token == "" {
		t.Fatalf("device: %d %s", st, b)
	}
	// The tracker learns about P1 from the journal; then the fix is taken.
	var ingested bool
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, b = call("GET", fmt.Sprintf("/ingest/osmand?id=tracker-1&lat=43.2383&lon=76.9458&timestamp=%d&token=%s", time.Now().Unix(), dev.Token), "", nil)
		if st == 200 {
			ingested = true
			break
		}
		if st != 404 {
			t.Fatalf("ingest: %d %s", st, b)
		}
	}
	if !ingested {
		t.Fatalf("ingest never accepted: %d %s", st, b)
	}
	pos, err := rdb.GeoPos(ctx, "kuzet:gis:units-available", "P1").Result()
	if err != nil || len(pos) != 1 || pos[0] == nil || pos[0].Latitude < 43.23 || pos[0].Latitude > 43.24 {
		t.Fatalf("Redis GEO key: %v %v", pos, err)
	}
	if st, b := call("GET", "/api/v1/positions", tok, nil); st != 200 || !strings.Contains(string(b), `"unit_id":"P1"`) {
		t.Fatalf("positions: %d %s", st, b)
	}
	// Node B learnt the fix through Redis (sessions are shared too).
	eventually(t, "node B sees P1's position", func() bool {
		base = nodeB
		defer func() { base = nodeA }()
		st, b := call("GET", "/api/v1/positions", tok, nil)
		return st == 200 && strings.Contains(string(b), `"unit_id":"P1"`)
	})
	// A map on node B follows P1 moved through node A.
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(nodeB, "http")+"/api/v1/positions/stream", http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteJSON(map[string]any{"type": "subscribe", "bbox": []float64{76.8, 43.1, 77.1, 43.4}})
	type posMsg struct {
		Type  string
		Units []struct {
			ID       string
			Lat, Lon float64
		}
	}
	readPos := func() posMsg {
		t.Helper()
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var m posMsg
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("node B map socket: %v", err)
		}
		return m
	}
	if m := readPos(); m.Type != "snapshot" || len(m.Units) != 1 || m.Units[0].ID != "P1" {
		t.Fatalf("node B snapshot: %+v", m)
	}
	// P1 patrols S1; it reports from north of it, through node A.
	if st, b := call("PUT", "/api/v1/units/P1", tok, map[string]any{"call_sign": "Беркут-1", "agency": "police", "kind": "car", "home_sector": "S1"}); st != 200 {
		t.Fatalf("home sector: %d %s", st, b)
	}
	clock := time.Now().Unix() // each fix a second newer than the last
	eventually(t, "P1's home sector reaches the trackers", func() bool {
		clock++
		st, b := call("GET", fmt.Sprintf("/ingest/osmand?id=tracker-1&lat=43.3000&lon=76.9500&timestamp=%d&token=%s", clock, dev.Token), "", nil)
		if st != 200 {
			t.Fatalf("ingest: %d %s", st, b)
		}
		for {
			m := readPos()
			if m.Type == "positions" && len(m.Units) == 1 && m.Units[0].ID == "P1" && m.Units[0].Lat == 43.3 {
				break
			}
			if m.Type != "positions" {
				t.Fatalf("node B map socket: %+v", m)
			}
		}
		base = nodeB
		defer func() { base = nodeA }()
		_, b = call("GET", "/api/v1/alerts", tok, nil)
		return strings.Contains(string(b), `"id":"unit_left_sector:P1"`)
	})
	// Both nodes watch P1; give the slower one time to try as well.
	time.Sleep(2 * time.Second)
	countAlerts := func(typ string) int {
		msgs, err := rdb.XRange(ctx, "kuzet:dispatch:journal", "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range msgs {
			body, _ := m.Values["b"].(string)
			if strings.Contains(body, typ) && strings.Contains(body, "alert:unit_left_sector:P1") {
				n++
			}
		}
		return n
	}
	if n := countAlerts(`"alert.raised"`); n != 1 {
		t.Fatalf("unit_left_sector:P1 raised %d times in the journal, want once", n)
	}
	// Back inside S1: cleared once.
	if st, b := call("GET", fmt.Sprintf("/ingest/osmand?id=tracker-1&lat=43.2383&lon=76.9458&timestamp=%d&token=%s", clock+1, dev.Token), "", nil); st != 200 {
		t.Fatalf("ingest: %d %s", st, b)
	}
	eventually(t, "the alert clears", func() bool { return countAlerts(`"alert.cleared"`) == 1 })
	time.Sleep(2 * time.Second)
	if n := countAlerts(`"alert.cleared"`); n != 1 {
		t.Fatalf("unit_left_sector:P1 cleared %d times, want once", n)
	}
	st, b = call("POST", "/api/v1/incidents", tok, map[string]any{"type": "THEFT", "location": map[string]float64{"lat": 43.24, "lon": 76.93}})
	if st != 201 || !strings.Contains(string(b), `"sector":"S1"`) {
		t.Fatalf("incident sector from --sectors: %d %s", st, b)
	}
	// A new sector set is stored in Redis with a new version for the others.
	v0, _ := rdb.Get(ctx, "kuzet:gis:sectors-version").Int64()
	st, b = call("PUT", "/api/v1/sectors", tok, json.RawMessage(`{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"S2","name":"Медеу"},"geometry":{"type":"Polygon","coordinates":[[[76.90,43.20],[77.00,43.20],[77.00,43.30],[76.90,43.20]]]}}]}`))
	if st != 200 {
		t.Fatalf("PUT sectors: %d %s", st, b)
	}
	if v1, _ := rdb.Get(ctx, "kuzet:gis:sectors-version").Int64(); v1 != v0+1 {
		t.Fatalf("sectors version %d → %d", v0, v1)
	}
	if s, _ := rdb.Get(ctx, "kuzet:gis:sectors").Result(); !strings.Contains(s, "S2") {
		t.Fatal("sectors not in Redis")
	}
	eventually(t, "node B reloads the sectors", func() bool {
		base = nodeB
		defer func() { base = nodeA }()
		st, b := call("GET", "/api/v1/sectors", tok, nil)
		return st == 200 && strings.Contains(string(b), `"S2"`) && !strings.Contains(string(b), `"S1"`)
	})
	ns.stop()
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}

// TestWaitReplicasNeedsRedis: --redis-wait-replicas is refused without
// --redis (embedded storage has no replicas) and when negative.
func TestWaitReplicasNeedsRedis(t *testing.T) {
	for _, cfg := range []Config{
		{Addr: "127.0.0.1:0", DataDir: t.TempDir(), RedisWaitReplicas: 1},
		{Addr: "127.0.0.1:0", DataDir: t.TempDir(), RedisURL: "redis://127.0.0.1:1/0", RedisWaitReplicas: -1},
	} {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--redis-wait-replicas") {
			t.Fatalf("%+v: %v", cfg, err)
		}
	}
}
