package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/dispatch/journal/filejournal"
	"github.com/kuzet/kuzet/gis"
	"github.com/kuzet/kuzet/internal/auth"
)

func init() {
	addMatrix(map[string]string{
		"POST /api/v1/units/{id}/position":           "officer device",
		"POST /api/v1/positions/batch":               "officer device gateway",
		"GET /api/v1/units/{id}/track":               "calltaker dispatcher supervisor viewer officer device",
		"GET /api/v1/positions":                      "calltaker dispatcher supervisor viewer officer device",
		"GET /api/v1/incidents/{id}/recommendations": "calltaker dispatcher supervisor",
		"GET /api/v1/cameras/near":                   "calltaker dispatcher supervisor viewer",
		"GET /api/v1/sectors":                        "calltaker dispatcher supervisor viewer officer admin device",
		"PUT /api/v1/sectors":                        "supervisor admin",
	})
}

// Almaty, around the Republic Square.
const almatyLat, almatyLon = 43.2383, 76.9458

// sectorS1 is a square patrol sector with a hole (a park nobody patrols).
const sectorS1 = `{"type":"FeatureCollection","features":[{"type":"Feature","id":"S1",
 "properties":{"id":"S1","name":"Алмалы-1"},
 "geometry":{"type":"Polygon","coordinates":[
  [[76.90,43.22],[76.96,43.22],[76.96,43.26],[76.90,43.26],[76.90,43.22]],
  [[76.91,43.23],[76.92,43.23],[76.92,43.24],[76.91,43.24],[76.91,43.23]]]}}]}`

// tracked registers a unit on shift, waits until the tracker knows it is
// available, and issues a device token for it.
func (f *fixture) tracked(id, device string, caps ...string) string {
	f.t.Helper()
	ctx := context.Background()
	if _, err := f.svc.RegisterUnit(ctx, sup, dispatch.UnitSpec{ID: id, CallSign: "Сункар-" + id, Agency: "police", Kind: "car", Capabilities: caps}); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.svc.SetShift(ctx, sup, id, true); err != nil {
		f.t.Fatal(err)
	}
	f.waitUnit(id, "available")
	if device == "" {
		return ""
	}
	_, tok, err := f.srv.auth.AddDevice(ctx, device, id, "")
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// waitUnit waits until the tracker holds unit id with status.
func (f *fixture) waitUnit(id, status string) gis.UnitState {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		u, ok := f.srv.gis.tr.Unit(id)
		if ok && u.Status == status {
			return u
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("tracker never saw unit %s %s (has %+v)", id, status, u)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fixture) position(id string) (gis.Fix, bool) {
	u, ok := f.srv.gis.tr.Unit(id)
	return u.Fix, ok && u.HasFix
}

func TestIngestOsmAnd(t *testing.T) {
	f := newFixture(t)
	tok := f.tracked("P201", "osmand-201")
	ts := time.Now().Add(-10 * time.Second).Unix()
	// OsmAnd's default URL template, as the app sends it (GET).
	a := f.do("GET", fmt.Sprintf("/ingest/osmand?id=osmand-201&timestamp=%d&lat=%.6f&lon=%.6f&speed=10.0&bearing=87.5&altitude=780&accuracy=8.0&batt=76&token=%s", ts, almatyLat, almatyLon, tok), "", nil)
	if a.status != 200 {
		t.Fatalf("GET: %d %s", a.status, a.body)
	}
	fix, ok := f.position("P201")
	if !ok || fix.Lat != almatyLat || fix.Time.Unix() != ts || fix.Heading != 87.5 || fix.Battery != 76 {
		t.Fatalf("stored %+v", fix)
	}
	if want := 10 * 1852.0 / 3600; fix.Speed < want-1e-9 || fix.Speed > want+1e-9 {
		t.Fatalf("speed %v m/s, want %v (10 knots)", fix.Speed, want)
	}
	// Traccar Client's form POST with the token as a Bearer header.
	form := url.Values{"deviceid": {"osmand-201"}, "lat": {"43.2400"}, "lon": {"76.9500"}, "timestamp": {fmt.Sprint(ts + 1)}, "hdop": {"0.9"}}
	a = f.do("POST", "/ingest/osmand", tok, form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	if a.status != 200 {
		t.Fatalf("form POST: %d %s", a.status, a.body)
	}
	if fix, _ := f.position("P201"); fix.Lat != 43.24 {
		t.Fatalf("form POST stored %+v", fix)
	}
	// Traccar Client 9 JSON body (transistorsoft location), token in the URL.
	body := fmt.Sprintf(`{"location":{"timestamp":"%s","coords":{"latitude":43.2410,"longitude":76.9510,"accuracy":5.1,"speed":12.5,"heading":180,"altitude":790},
	 "is_moving":true,"odometer":1234.5,"event":"motionchange","battery":{"level":0.55,"is_charging":false},"activity":{"type":"in_vehicle"}},"device_id":"osmand-201"}`,
		time.Unix(ts+2, 0).UTC().Format(time.RFC3339))
	a = f.do("POST", "/ingest/osmand?token="+url.QueryEscape(tok), "", body)
	if a.status != 200 {
		t.Fatalf("JSON POST: %d %s", a.status, a.body)
	}
	if fix, _ := f.position("P201"); fix.Lat != 43.241 || fix.Speed != 12.5 || !near(fix.Battery, 55, 1e-9) {
		t.Fatalf("JSON POST stored %+v", fix)
	}
	// An older fix arriving late does not move the unit back.
	a = f.do("GET", fmt.Sprintf("/ingest/osmand?id=osmand-201&timestamp=%d&lat=43.1&lon=76.8&token=%s", ts-100, tok), "", nil)
	if fix, _ := f.position("P201"); a.status != 200 || fix.Lat != 43.241 {
		t.Fatalf("late fix moved the unit: %d %+v", a.status, fix)
	}
	g := f.srv.gis
	if applied, older, ok := testutil.ToFloat64(g.fixes.WithLabelValues("osmand", "applied")), testutil.ToFloat64(g.fixes.WithLabelValues("osmand", "older")),
		testutil.ToFloat64(g.requests.WithLabelValues("osmand", "200")); applied != 3 || older != 1 || ok != 4 {
		t.Fatalf("metrics: applied %v, older %v, 200 answers %v", applied, older, ok)
	}
}

func TestIngestOwnTracks(t *testing.T) {
	f := newFixture(t)
	tok := f.tracked("P202", "phone-202")
	tst := time.Now().Add(-5 * time.Second).Unix()
	loc := fmt.Sprintf(`{"_type":"location","acc":12,"alt":801,"batt":64,"bs":1,"conn":"m","created_at":%d,"lat":43.2501,"lon":76.9301,"m":1,"t":"u","tid":"kz","tst":%d,"vac":3,"vel":36,"cog":270}`, tst, tst)
	post := func(user, pass, body string) answer {
		req, _ := http.NewRequest("POST", f.http.URL+"/ingest/owntracks", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Limit-U", user)
		req.Header.Set("X-Limit-D", user)
		if user != "" || pass != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a answer
		a.status = resp.StatusCode
		buf := new(strings.Builder)
		_, _ = fmt.Fprint(buf, "")
		b := make([]byte, 4096)
		n, _ := resp.Body.Read(b)
		a.body = b[:n]
		if a.status >= 400 {
			_ = json.Unmarshal(a.body, &a.err)
		}
		return a
	}
	a := post("phone-202", tok, loc)
	if a.status != 200 || string(a.body) != "[]" {
		t.Fatalf("location: %d %s", a.status, a.body)
	}
	fix, ok := f.position("P202")
	if !ok || fix.Lat != 43.2501 || fix.Accuracy != 12 || fix.Speed != 10 || fix.Heading != 270 || fix.Time.Unix() != tst {
		t.Fatalf("stored %+v", fix)
	}
	// Last will and transition messages: 200 "[]", nothing stored.
	for _, msg := range []string{`{"_type":"lwt","tst":1700000000}`, `{"_type":"transition","event":"enter","desc":"Office","lat":43.1,"lon":76.1,"tst":1700000000,"acc":10,"tid":"kz","t":"c","wtst":1690000000}`} {
		if a := post("phone-202", tok, msg); a.status != 200 || string(a.body) != "[]" {
			t.Fatalf("%s: %d %s", msg, a.status, a.body)
		}
	}
	if fix2, _ := f.position("P202"); fix2 != fix {
		t.Fatalf("a non-location message changed the position: %+v", fix2)
	}
	if a := post("phone-202", "wrong-token", loc); a.status != 401 || a.err.Code != "invalid_token" {
		t.Fatalf("wrong password: %d %s", a.status, a.body)
	}
	if a := post("", "", loc); a.status != 401 {
		t.Fatalf("no credentials: %d %s", a.status, a.body)
	}
}

func TestIngestRejectsAndStoresNothing(t *testing.T) {
	f := newFixture(t)
	tok := f.tracked("P203", "tracker-203")
	other := f.tracked("P204", "tracker-204")
	now := time.Now().Unix()
	q := func(kv ...string) string {
		v := url.Values{"id": {"tracker-203"}, "lat": {"43.25"}, "lon": {"76.93"}, "timestamp": {fmt.Sprint(now)}, "token": {tok}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return "/ingest/osmand?" + v.Encode()
	}
	cases := []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"wrong token", q("token", "0123456789abcdef0123456789abcdef"), "", 401, "invalid_token"},
		{"no token", q("token", ""), "", 401, "unauthenticated"},
		{"unknown device", q("id", "ghost-9", "token", "0123456789abcdef0123456789abcdef"), "", 401, "unknown_device"},
		{"another device's token", q("token", other), "", 403, "device_mismatch"},
		{"user session instead of device token", q("token", ""), f.tokens[auth.RoleOfficer], 401, "device_token_required"},
		{"latitude out of range", q("lat", "91.5"), "", 400, "bad_fix"},
		{"longitude out of range", q("lon", "-181"), "", 400, "bad_fix"},
		{"not a number", q("lat", "43,25"), "", 400, "bad_fix"},
		{"far future", q("timestamp", fmt.Sprint(now+3600)), "", 400, "future_fix"},
		{"no id", q("id", ""), "", 400, "bad_fix"},
		{"oversize value", q("batt", strings.Repeat("9", 500)), "", 413, "too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := f.do("GET", c.path, c.token, nil)
			if a.status != c.status || a.err.Code != c.code || a.err.Message == "" {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, c.status, c.code)
			}
		})
	}
	// A body over the limit is refused before parsing.
	big := `{"location":{"coords":{"latitude":43,"longitude":76}},"device_id":"tracker-203","pad":"` + strings.Repeat("x", gis.MaxPayloadBytes) + `"}`
	if a := f.do("POST", "/ingest/osmand?token="+tok, "", big); a.status != 413 {
		t.Fatalf("oversize JSON: %d %s", a.status, a.body)
	}
	for _, id := range []string{"P203", "P204"} {
		if fix, ok := f.position(id); ok {
			t.Fatalf("rejected requests stored a position for %s: %+v", id, fix)
		}
		if tr, _ := f.srv.gis.tr.Track(context.Background(), id, time.Unix(0, 0), time.Now().Add(time.Hour)); len(tr) != 0 {
			t.Fatalf("rejected requests left history for %s", id)
		}
	}
}

func TestTerminalPositionOwnUnitOnly(t *testing.T) {
	f := newFixture(t)
	f.tracked("P205", "")
	body := map[string]any{"lat": 43.245, "lon": 76.94, "accuracy": 6, "speed": 8.3, "heading": 12}
	for _, role := range []auth.Role{auth.RoleOfficer, auth.RoleDevice} {
		a := f.do("POST", "/api/v1/units/"+f.unit+"/position", f.tokens[role], body)
		if a.status != 200 || !strings.Contains(string(a.body), `"applied":true`) {
			t.Fatalf("%s own unit: %d %s", role, a.status, a.body)
		}
		body["time"] = time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano) // next one is newer
		if a := f.do("POST", "/api/v1/units/P205/position", f.tokens[role], body); a.status != 403 || a.err.Code != "not_your_unit" {
			t.Fatalf("%s reports for another unit: %d %s", role, a.status, a.body)
		}
	}
	if _, ok := f.position("P205"); ok {
		t.Fatal("a position for another unit was stored")
	}
	// Dispatchers may not fake positions.
	if a := f.do("POST", "/api/v1/units/P205/position", f.tokens[auth.RoleDispatcher], body); a.status != 403 || a.err.Code != "role_forbidden" {
		t.Fatalf("dispatcher: %d %s", a.status, a.body)
	}
	before, _ := f.position(f.unit)
	for name, b := range map[string]string{
		"out of range": `{"lat":43.2,"lon":200}`,
		"far future":   fmt.Sprintf(`{"lat":43.2,"lon":76.9,"time":%q}`, time.Now().Add(2*time.Hour).UTC().Format(time.RFC3339)),
		"no lat":       `{"lon":76.9}`,
		"NaN-ish":      `{"lat":"north","lon":76.9}`,
		"unknown":      `{"lat":43.2,"lon":76.9,"altitude_ft":3}`,
	} {
		if a := f.do("POST", "/api/v1/units/"+f.unit+"/position", f.tokens[auth.RoleOfficer], b); a.status != 400 {
			t.Fatalf("%s: %d %s", name, a.status, a.body)
		}
	}
	if after, _ := f.position(f.unit); after != before {
		t.Fatalf("rejected fixes changed the position: %+v → %+v", before, after)
	}
}

func TestPositionBatch(t *testing.T) {
	f := newFixture(t)
	f.tracked("P206", "")
	f.tracked("P207", "")
	now := time.Now().UTC()
	fix := func(unit string, lat float64, at time.Time) map[string]any {
		return map[string]any{"unit_id": unit, "lat": lat, "lon": 76.95, "time": at.Format(time.RFC3339Nano), "accuracy": 5}
	}
	// An AVL gateway (admin account) relays several units.
	a := f.do("POST", "/api/v1/positions/batch", f.tokens[auth.RoleGateway], map[string]any{"fixes": []any{
		fix("P206", 43.20, now.Add(-3*time.Second)), fix("P206", 43.21, now.Add(-2*time.Second)),
		fix("P207", 43.30, now.Add(-time.Second)), fix("P207", 95, now), fix("GHOST", 43.3, now),
	}})
	var ans batchAnswer
	json.Unmarshal(a.body, &ans)
	if a.status != 200 || ans.Applied != 3 || ans.Rejected != 2 || len(ans.Errors) != 2 {
		t.Fatalf("gateway batch: %d %s", a.status, a.body)
	}
	if p, _ := f.position("P206"); p.Lat != 43.21 {
		t.Fatalf("P206 at %+v", p)
	}
	// A terminal's buffered fixes: only its own unit; one foreign fix
	// refuses the batch and stores nothing.
	before, _ := f.position(f.unit)
	a = f.do("POST", "/api/v1/positions/batch", f.tokens[auth.RoleDevice], map[string]any{"fixes": []any{
		fix("", 43.25, now.Add(-time.Second)), fix("P206", 43.5, now),
	}})
	if a.status != 403 || a.err.Code != "not_your_unit" {
		t.Fatalf("foreign fix: %d %s", a.status, a.body)
	}
	if p, _ := f.position(f.unit); p != before {
		t.Fatal("refused batch stored a fix")
	}
	if p, _ := f.position("P206"); p.Lat != 43.21 {
		t.Fatal("refused batch stored the foreign fix")
	}
	a = f.do("POST", "/api/v1/positions/batch", f.tokens[auth.RoleDevice], map[string]any{"fixes": []any{fix("", 43.25, now.Add(-time.Second))}})
	if a.status != 200 {
		t.Fatalf("own batch: %d %s", a.status, a.body)
	}
	if a := f.do("POST", "/api/v1/positions/batch", f.tokens[auth.RoleGateway], map[string]any{"fixes": []any{fix("P206", -91, now)}}); a.status != 400 {
		t.Fatalf("all invalid: %d %s", a.status, a.body)
	}
	if a := f.do("POST", "/api/v1/positions/batch", f.tokens[auth.RoleGateway], map[string]any{"fixes": []any{}}); a.status != 400 {
		t.Fatalf("empty: %d %s", a.status, a.body)
	}
}

func TestTrackAndPositionsAt(t *testing.T) {
	f := newFixture(t)
	f.tracked("P208", "")
	t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	var fixes []any
	for i := 0; i < 4; i++ {
		fixes = append(fixes, map[string]any{"unit_id": "P208", "lat": 43.20 + float64(i)*0.01, "lon": 76.90 + float64(i)*0.01, "time": t0.Add(time.Duration(i) * 10 * time.Second).Format(time.RFC3339)})
	}
	if a := f.do("POST", "/api/v1/positions/batch", f.tokens[auth.RoleGateway], map[string]any{"fixes": fixes}); a.status != 200 {
		t.Fatalf("batch: %d %s", a.status, a.body)
	}
	from, to := t0.Add(5*time.Second).Format(time.RFC3339), t0.Add(35*time.Second).Format(time.RFC3339)
	a := f.do("GET", "/api/v1/units/P208/track?from="+from+"&to="+to, f.tokens[auth.RoleDispatcher], nil)
	var feat struct {
		Type     string
		Geometry struct {
			Type        string
			Coordinates [][2]float64
		}
		Properties struct{ Times []string }
	}
	if err := json.Unmarshal(a.body, &feat); err != nil || a.status != 200 {
		t.Fatalf("track: %d %s", a.status, a.body)
	}
	if feat.Type != "Feature" || feat.Geometry.Type != "LineString" || len(feat.Geometry.Coordinates) != 3 ||
		!near(feat.Geometry.Coordinates[0][0], 76.91, 1e-9) || !near(feat.Geometry.Coordinates[0][1], 43.21, 1e-9) || len(feat.Properties.Times) != 3 {
		t.Fatalf("track %s", a.body)
	}
	if a := f.do("GET", "/api/v1/units/P208/track?from="+to+"&to="+from, f.tokens[auth.RoleDispatcher], nil); a.status != 400 {
		t.Fatalf("reversed range: %d", a.status)
	}
	if a := f.do("GET", "/api/v1/units/P208/track", f.tokens[auth.RoleOfficer], nil); a.status != 403 {
		t.Fatalf("officer reads another unit's track: %d", a.status)
	}
	// Positions at t0+15 s: the second fix.
	a = f.do("GET", "/api/v1/positions?at="+t0.Add(15*time.Second).Format(time.RFC3339), f.tokens[auth.RoleViewer], nil)
	var at struct{ Positions []unitPosition }
	json.Unmarshal(a.body, &at)
	if a.status != 200 || len(at.Positions) != 1 || at.Positions[0].UnitID != "P208" || !near(at.Positions[0].Fix.Lat, 43.21, 1e-9) {
		t.Fatalf("positions at: %d %s", a.status, a.body)
	}
	a = f.do("GET", "/api/v1/positions", f.tokens[auth.RoleViewer], nil)
	json.Unmarshal(a.body, &at)
	if a.status != 200 || len(at.Positions) != 1 || !near(at.Positions[0].Fix.Lat, 43.23, 1e-9) {
		t.Fatalf("positions now: %d %s", a.status, a.body)
	}
	if a := f.do("GET", "/api/v1/positions?at=yesterday", f.tokens[auth.RoleViewer], nil); a.status != 400 || a.err.Code != "bad_time" {
		t.Fatalf("bad at: %d %s", a.status, a.body)
	}
}

func TestRecommendationRanksAndAssignmentRecordsIt(t *testing.T) {
	f := newFixture(t)
	// Five crews at 0.5, 1, 2, 3 and 4 km north of the incident; the one at
	// 2 km has a dog.
	inc, err := f.svc.CreateIncident(context.Background(), sup, dispatch.NewIncident{Type: "ASSAULT", Location: dispatch.Location{Lat: almatyLat, Lon: almatyLon}})
	if err != nil {
		t.Fatal(err)
	}
	var fixes []any
	for i, km := range []float64{3, 0.5, 2, 4, 1} {
		id := fmt.Sprintf("R%d", i)
		var caps []string
		if km == 2 {
			caps = []string{"k9"}
		}
		f.tracked(id, "", caps...)
		fixes = append(fixes, map[string]any{"unit_id": id, "lat": almatyLat + km/111.2, "lon": almatyLon, "accuracy": 5})
	}
	if a := f.do("POST", "/api/v1/positions/batch", f.tokens[auth.RoleGateway], map[string]any{"fixes": fixes}); a.status != 200 {
		t.Fatalf("batch: %d %s", a.status, a.body)
	}
	var out struct {
		Recommendations []recommendationView
	}
	a := f.do("GET", "/api/v1/incidents/"+inc.ID+"/recommendations?k=3", f.tokens[auth.RoleDispatcher], nil)
	json.Unmarshal(a.body, &out)
	ids := []string{}
	for _, r := range out.Recommendations {
		ids = append(ids, r.UnitID)
	}
	if a.status != 200 || !slices.Equal(ids, []string{"R1", "R4", "R2"}) {
		t.Fatalf("ranking %v: %s", ids, a.body)
	}
	r0 := out.Recommendations[0]
	if r0.Rank != 1 || r0.DistanceM < 490 || r0.DistanceM > 510 || r0.ETA.Seconds <= 0 || r0.ETA.Source != "straight_line" || !r0.CapabilityOK || r0.Pick.Rank != 1 {
		t.Fatalf("reasons of the first: %+v", r0)
	}
	a = f.do("GET", "/api/v1/incidents/"+inc.ID+"/recommendations?k=2&capabilities=k9", f.tokens[auth.RoleDispatcher], nil)
	json.Unmarshal(a.body, &out)
	if len(out.Recommendations) != 2 || out.Recommendations[0].UnitID != "R2" || out.Recommendations[1].CapabilityOK || !slices.Equal(out.Recommendations[1].MissingCaps, []string{"k9"}) {
		t.Fatalf("k9 first, then the nearest without a dog marked: %s", a.body)
	}
	pick := out.Recommendations[0]
	a = f.do("POST", "/api/v1/incidents/"+inc.ID+"/assignments", f.tokens[auth.RoleDispatcher],
		map[string]any{"unit_ids": []string{"R2"}, "recommendation": map[string]any{"R2": pick.Pick}})
	if a.status != 200 {
		t.Fatalf("assign: %d %s", a.status, a.body)
	}
	got, _ := f.svc.Incident(inc.ID)
	rec := got.ActiveAssignment("R2").Recommendation
	if rec == nil || rec.Rank != 1 || rec.DistanceM != pick.DistanceM || rec.Source != "straight_line" {
		t.Fatalf("recorded recommendation %+v", rec)
	}
	// R2 is now dispatched: the next recommendation leaves it out.
	f.waitUnit("R2", "dispatched")
	a = f.do("GET", "/api/v1/incidents/"+inc.ID+"/recommendations?k=5", f.tokens[auth.RoleDispatcher], nil)
	json.Unmarshal(a.body, &out)
	for _, r := range out.Recommendations {
		if r.UnitID == "R2" {
			t.Fatalf("busy unit recommended: %s", a.body)
		}
	}
	if a := f.do("GET", "/api/v1/incidents/"+inc.ID+"/recommendations?k=0", f.tokens[auth.RoleDispatcher], nil); a.status != 400 {
		t.Fatalf("k=0: %d", a.status)
	}
}

func TestSectorsAndIncidentSector(t *testing.T) {
	f := newFixture(t)
	sv := f.tokens[auth.RoleSupervisor]
	a := f.do("PUT", "/api/v1/sectors", sv, sectorS1, "Content-Type", "application/geo+json")
	if a.status != 200 || !strings.Contains(string(a.body), `"sectors":1`) {
		t.Fatalf("PUT: %d %s", a.status, a.body)
	}
	a = f.do("GET", "/api/v1/sectors", f.tokens[auth.RoleOfficer], nil)
	var fc struct {
		Type     string
		Features []struct {
			ID       string
			Geometry struct {
				Type        string
				Coordinates [][][2]float64
			}
			Properties map[string]string
		}
	}
	if err := json.Unmarshal(a.body, &fc); err != nil || fc.Type != "FeatureCollection" || len(fc.Features) != 1 ||
		fc.Features[0].Properties["name"] != "Алмалы-1" || len(fc.Features[0].Geometry.Coordinates) != 2 {
		t.Fatalf("GET: %d %s", a.status, a.body)
	}
	bad := map[string]string{
		"unclosed ring":       `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"X","name":"x"},"geometry":{"type":"Polygon","coordinates":[[[76.9,43.2],[77,43.2],[77,43.3],[76.9,43.3]]]}}]}`,
		"latitude 120":        `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"X","name":"x"},"geometry":{"type":"Polygon","coordinates":[[[76.9,43.2],[77,120],[77,43.3],[76.9,43.2]]]}}]}`,
		"point, not polygon":  `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"X","name":"x"},"geometry":{"type":"Point","coordinates":[76.9,43.2]}}]}`,
		"coordinates strings": `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"X","name":"x"},"geometry":{"type":"Polygon","coordinates":"here"}}]}`,
		"not GeoJSON":         `{"sectors":[]}`,
		"not JSON":            `<kml/>`,
	}
	for name, b := range bad {
		a := f.do("PUT", "/api/v1/sectors", sv, b)
		if a.status != 400 || a.err.Code != "bad_geojson" {
			t.Errorf("%s: %d %s", name, a.status, a.body)
		}
	}
	if f.srv.gis.sectors.Len() != 1 {
		t.Fatal("an invalid set replaced the sectors")
	}
	if a := f.do("PUT", "/api/v1/sectors", f.tokens[auth.RoleDispatcher], sectorS1); a.status != 403 {
		t.Fatalf("dispatcher PUT: %d", a.status)
	}
	// Incidents get their sector; the hole is not in it.
	in, err := f.svc.CreateIncident(context.Background(), sup, dispatch.NewIncident{Type: "THEFT", Location: dispatch.Location{Lat: 43.25, Lon: 76.95}})
	if err != nil || in.Location.Sector != "S1" {
		t.Fatalf("incident sector %q, %v", in.Location.Sector, err)
	}
	hole := dispatch.Location{Lat: 43.235, Lon: 76.915}
	up, err := f.svc.UpdateIncident(context.Background(), sup, in.ID, dispatch.IncidentPatch{Location: &hole})
	if err != nil || up.Location.Sector != "" {
		t.Fatalf("moved into the hole: sector %q, %v", up.Location.Sector, err)
	}
}

func TestWatcherAlertReachesJournal(t *testing.T) {
	f := newFixture(t)
	if a := f.do("PUT", "/api/v1/sectors", f.tokens[auth.RoleSupervisor], sectorS1); a.status != 200 {
		t.Fatalf("sectors: %d", a.status)
	}
	c, _, err := f.dial(t, "/api/v1/stream", bearerHeader(f.tokens[auth.RoleDispatcher]))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read(t, c) // snapshot
	// P101 patrols S1 but reports from outside it.
	if a := f.do("PUT", "/api/v1/units/"+f.unit, f.tokens[auth.RoleSupervisor], map[string]any{"call_sign": "Беркут-101", "agency": "police", "kind": "car", "home_sector": "S1"}); a.status != 200 {
		t.Fatalf("home sector: %d %s", a.status, a.body)
	}
	f.waitUnit(f.unit, "dispatched")
	if a := f.do("POST", "/api/v1/units/"+f.unit+"/position", f.tokens[auth.RoleOfficer], map[string]any{"lat": 43.30, "lon": 76.95}); a.status != 200 {
		t.Fatalf("position: %d %s", a.status, a.body)
	}
	want := map[string]bool{"unit_left_sector:" + f.unit: false, "sector_uncovered:S1": false}
	deadline := time.Now().Add(5 * time.Second)
	for slices.Contains(mapValues(want), false) && time.Now().Before(deadline) {
		m := read(t, c)
		if m.Type == dispatch.EvAlertRaised {
			var p dispatch.AlertRaised
			json.Unmarshal(m.Data, &p)
			if _, ok := want[p.AlertID]; ok {
				want[p.AlertID] = true
			}
		}
	}
	if slices.Contains(mapValues(want), false) {
		t.Fatalf("alerts on the stream: %v", want)
	}
	var alerts struct{ Alerts []dispatch.Alert }
	json.Unmarshal(f.do("GET", "/api/v1/alerts", f.tokens[auth.RoleDispatcher], nil).body, &alerts)
	found := 0
	for _, a := range alerts.Alerts {
		if a.ID == "unit_left_sector:"+f.unit && a.Active && strings.Contains(a.Message, "Беркут-101") && strings.Contains(a.Message, "S1") {
			found++
		}
	}
	if found != 1 {
		t.Fatalf("GET /api/v1/alerts: %+v", alerts)
	}
	// Back inside: the alert clears (once).
	if a := f.do("POST", "/api/v1/units/"+f.unit+"/position", f.tokens[auth.RoleOfficer], map[string]any{"lat": 43.25, "lon": 76.95, "time": time.Now().Add(time.Second).UTC()}); a.status != 200 {
		t.Fatalf("position: %d %s", a.status, a.body)
	}
	for {
		m := read(t, c)
		if m.Type == dispatch.EvAlertCleared && m.Agg == "alert:unit_left_sector:"+f.unit {
			break
		}
	}
}

func mapValues(m map[string]bool) []bool {
	var out []bool
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

type posBatch struct {
	Type  string
	Units []struct {
		ID  string
		Lat float64
		Lon float64
		T   int64
	}
}

func readPos(t *testing.T, c *websocket.Conn) posBatch {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m posBatch
	if err := c.ReadJSON(&m); err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

func TestPositionsStream(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"M1", "M2", "M3"} {
		f.tracked(id, "")
	}
	gw := f.tokens[auth.RoleGateway]
	send := func(fixes ...any) {
		t.Helper()
		if a := f.do("POST", "/api/v1/positions/batch", gw, map[string]any{"fixes": fixes}); a.status != 200 {
			t.Fatalf("batch: %d %s", a.status, a.body)
		}
	}
	fx := func(id string, lat, lon float64, at time.Time) any {
		return map[string]any{"unit_id": id, "lat": lat, "lon": lon, "time": at.UTC().Format(time.RFC3339Nano)}
	}
	t0 := time.Now().Add(-time.Minute)
	send(fx("M1", 43.24, 76.94, t0), fx("M3", 51.17, 71.45, t0)) // M3 is in Astana

	// A browser: token in the first message, Origin of the server itself.
	c, _, err := f.dial(t, "/api/v1/positions/stream", http.Header{"Origin": {f.http.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteJSON(map[string]string{"type": "auth", "token": f.tokens[auth.RoleDispatcher]})
	c.WriteJSON(map[string]any{"type": "subscribe", "bbox": []float64{76.8, 43.1, 77.1, 43.4}})
	snap := readPos(t, c)
	if snap.Type != "snapshot" || len(snap.Units) != 1 || snap.Units[0].ID != "M1" {
		t.Fatalf("snapshot %+v", snap)
	}
	// Ten moves of M1 and M2 in quick succession and one in Astana arrive
	// coalesced: each unit at most once per batch, M3 never.
	sendStart := time.Now()
	for i := 1; i <= 10; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		send(fx("M1", 43.24+float64(i)*0.001, 76.94, at), fx("M2", 43.25, 76.95+float64(i)*0.001, at), fx("M3", 51.17, 71.45+float64(i)*0.001, at))
	}
	sendTime := time.Since(sendStart)
	last := map[string]float64{}
	batches := 0
	for !near(last["M1"], 43.25, 1e-9) || !near(last["M2"], 76.96, 1e-9) {
		b := readPos(t, c)
		if b.Type != "positions" {
			t.Fatalf("unexpected %+v", b)
		}
		batches++
		seen := map[string]bool{}
		for _, u := range b.Units {
			if u.ID == "M3" {
				t.Fatal("a unit outside the viewport was sent")
			}
			if seen[u.ID] {
				t.Fatalf("unit %s twice in one batch", u.ID)
			}
			seen[u.ID] = true
			last[u.ID] = map[bool]float64{true: u.Lat, false: u.Lon}[u.ID == "M1"]
		}
	}
	// At most one batch per 250 ms flush while sending, plus the last.
	if limit := int(sendTime/(250*time.Millisecond)) + 2; batches > limit || batches >= 10 {
		t.Fatalf("%d batches for 10 moves sent in %s: not coalesced", batches, sendTime)
	}
	// Moving the map to Astana: a new snapshot with M3.
	c.WriteJSON(map[string]any{"type": "subscribe", "bbox": []float64{71.3, 51.0, 71.6, 51.3}})
	for {
		b := readPos(t, c)
		if b.Type == "snapshot" {
			if len(b.Units) != 1 || b.Units[0].ID != "M3" {
				t.Fatalf("Astana snapshot %+v", b)
			}
			break
		}
	}

	// An officer sees only its own unit and may send its own fixes.
	o, _, err := f.dial(t, "/api/v1/positions/stream", bearerHeader(f.tokens[auth.RoleOfficer]))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	o.WriteJSON(map[string]any{"type": "position", "id": "1", "lat": 43.241, "lon": 76.941, "accuracy": 4})
	o.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ack posReply
	if err := o.ReadJSON(&ack); err != nil || ack.Type != "ack" || ack.ID != "1" || ack.Applied == nil || !*ack.Applied {
		t.Fatalf("ack %+v %v", ack, err)
	}
	o.WriteJSON(map[string]any{"type": "position", "id": "2", "unit_id": "M1", "lat": 43.2, "lon": 76.9})
	if err := o.ReadJSON(&ack); err != nil || ack.Type != "error" || ack.Code != "not_your_unit" {
		t.Fatalf("foreign fix over the socket: %+v %v", ack, err)
	}
	o.WriteJSON(map[string]any{"type": "subscribe", "bbox": []float64{76.8, 43.1, 77.1, 43.4}})
	if s := readPos(t, o); s.Type != "snapshot" || len(s.Units) != 1 || s.Units[0].ID != f.unit {
		t.Fatalf("officer snapshot %+v", s)
	}

	// A page from elsewhere may not open it.
	if _, resp, err := f.dial(t, "/api/v1/positions/stream", http.Header{"Origin": {"https://evil.example"}}); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin: %v %v", resp, err)
	}
	// Nor anyone without a token.
	n, _, err := f.dial(t, "/api/v1/positions/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.WriteJSON(map[string]string{"type": "auth", "token": "nope"})
	n.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = n.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != closeAuth {
		t.Fatalf("bad token: %v", err)
	}
}

func TestPositionsStreamCutsOffSlowClient(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tr := f.srv.gis.tr
	// 300 units straight into the tracker (the dispatch side is not what
	// this test is about): each flush is a batch of about 40 KB.
	for i := range 300 {
		if err := tr.SetUnit(ctx, gis.UnitInfo{ID: fmt.Sprintf("Z%03d", i), Agency: "police", Kind: "car", Status: "available"}); err != nil {
			t.Fatal(err)
		}
	}
	// The slow map reads its snapshot and then nothing; a tiny receive
	// buffer keeps the kernel from absorbing megabytes on its behalf.
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	slow, _, err := d.Dial("ws"+strings.TrimPrefix(f.http.URL, "http")+"/api/v1/positions/stream", bearerHeader(f.tokens[auth.RoleViewer]))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.WriteJSON(map[string]any{"type": "subscribe", "bbox": []float64{76.8, 43.1, 77.1, 43.4}})
	readPos(t, slow)
	fast, _, err := f.dial(t, "/api/v1/positions/stream", bearerHeader(f.tokens[auth.RoleDispatcher]))
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	fast.WriteJSON(map[string]any{"type": "subscribe", "bbox": []float64{76.8, 43.1, 77.1, 43.4}})
	readPos(t, fast)
	got := make(chan int, 1024)
	go func() {
		defer close(got)
		for {
			fast.SetReadDeadline(time.Now().Add(20 * time.Second))
			var b posBatch
			if err := fast.ReadJSON(&b); err != nil {
				return
			}
			got <- len(b.Units)
		}
	}()
	cutOff := func() float64 {
		return testutil.ToFloat64(f.srv.metrics.wsCutOff.WithLabelValues("queue_full")) + testutil.ToFloat64(f.srv.metrics.wsCutOff.WithLabelValues("write_timeout"))
	}
	base := time.Now().Add(-time.Hour)
	batch := make([]gis.UnitFix, 300)
	deadline := time.Now().Add(20 * time.Second)
	flushes := 0
	for ; cutOff() == 0; flushes++ {
		if time.Now().After(deadline) {
			t.Fatalf("slow client not cut off after %d flushes", flushes)
		}
		for i := range batch {
			batch[i] = gis.UnitFix{UnitID: fmt.Sprintf("Z%03d", i), Fix: gis.Fix{DeviceID: "t", Lat: 43.2 + float64(i)*1e-4, Lon: 76.9 + float64(flushes)*1e-6,
				Time: base.Add(time.Duration(flushes) * time.Millisecond), Speed: -1, Heading: -1, Accuracy: -1, Battery: -1}}
		}
		if _, err := tr.UpdateBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		f.srv.gis.feed.Flush()
		if flushes%8 == 7 {
			time.Sleep(10 * time.Millisecond) // let the fast client keep up, as a browser would
		}
	}
	t.Logf("slow client cut off after %d flushes of 300 units", flushes)
	// The fast map still gets full batches after the cut-off.
	for drained := false; !drained; {
		select {
		case _, open := <-got:
			if !open {
				t.Fatal("the fast client was cut off too")
			}
		default:
			drained = true
		}
	}
	for i := range batch {
		batch[i].Fix.Time = batch[i].Fix.Time.Add(time.Second)
	}
	if _, err := tr.UpdateBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	f.srv.gis.feed.Flush()
	for full := false; !full; {
		n, open := <-got
		if !open {
			t.Fatal("the fast client was cut off too")
		}
		full = n == 300
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		ps := &f.srv.gis.sockets
		ps.mu.Lock()
		n := len(ps.clients)
		ps.mu.Unlock()
		if n == 1 && f.srv.gis.feed.Subscribers() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server still holds %d sockets, %d subscribers", n, f.srv.gis.feed.Subscribers())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func near(a, b, eps float64) bool { return a-b < eps && b-a < eps }

// fuzzIngest is a server with one tracked unit and its device token, for
// the ingest fuzz targets (no network: handler calls).
func fuzzIngest(f *testing.F) (*Server, string) {
	dir := f.TempDir()
	j, err := filejournal.Open(filejournal.Config{Dir: dir})
	if err != nil {
		f.Fatal(err)
	}
	svc, _ := dispatch.New(dispatch.Config{Journal: j, TimerInterval: -1})
	store, _ := auth.OpenFileStore(dir)
	authn, _ := auth.New(auth.Config{Store: store})
	tr, _ := gis.NewTracker(context.Background(), gis.TrackerConfig{})
	srv, err := New(Config{Dispatch: svc, Auth: authn, Tracker: tr})
	if err != nil {
		f.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { svc.Close(); j.Close() })
	if err := tr.SetUnit(context.Background(), gis.UnitInfo{ID: "F1", Agency: "police", Status: "available"}); err != nil {
		f.Fatal(err)
	}
	_, tok, err := authn.AddDevice(context.Background(), "fz-1", "F1", "")
	if err != nil {
		f.Fatal(err)
	}
	return srv, tok
}

// ingestAnswerOK checks an ingest answer: a 4xx a device can act on, or 200.
func ingestAnswerOK(t *testing.T, rec *httptest.ResponseRecorder) {
	switch rec.Code {
	case 200, 400, 401, 403, 404, 413, 415:
	default:
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if rec.Code >= 400 {
		var e apiError
		if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Code == "" || e.Message == "" {
			t.Fatalf("error answer is not {code, message}: %s", rec.Body)
		}
	}
}

func FuzzIngestOsmAndHTTP(f *testing.F) {
	srv, tok := fuzzIngest(f)
	h := srv.Handler()
	now := time.Now().Unix()
	f.Add(fmt.Sprintf("id=fz-1&timestamp=%d&lat=43.2383&lon=76.9458&speed=10&bearing=87.5&altitude=780&accuracy=8&batt=76&token=%s", now, tok), "")
	f.Add("deviceid=fz-1&location=43.2,76.9&token="+tok, "")
	f.Add("token="+tok, fmt.Sprintf(`{"location":{"timestamp":"%s","coords":{"latitude":43.24,"longitude":76.95,"accuracy":5,"speed":12.5,"heading":180,"altitude":790},"battery":{"level":0.55}},"device_id":"fz-1"}`, time.Now().UTC().Format(time.RFC3339)))
	f.Add("id=fz-1&lat=91&lon=76&token="+tok, "")
	f.Add("id=ghost&lat=43&lon=76&token=nope", "")
	f.Fuzz(func(t *testing.T, query, body string) {
		var req *http.Request
		if body == "" {
			req = httptest.NewRequest("GET", "/ingest/osmand", nil)
			req.URL.RawQuery = query
		} else {
			req = httptest.NewRequest("POST", "/ingest/osmand", strings.NewReader(body))
			req.URL.RawQuery = query
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		ingestAnswerOK(t, rec)
		if u, _ := srv.gis.tr.Unit("F1"); u.HasFix {
			if err := u.Fix.Point().Valid(); err != nil || u.Fix.Time.After(time.Now().Add(6*time.Minute)) {
				t.Fatalf("stored an invalid fix %+v", u.Fix)
			}
		}
	})
}

func FuzzIngestOwnTracksHTTP(f *testing.F) {
	srv, tok := fuzzIngest(f)
	h := srv.Handler()
	f.Add(fmt.Sprintf(`{"_type":"location","acc":12,"alt":801,"batt":64,"lat":43.2501,"lon":76.9301,"tid":"kz","tst":%d,"vel":36,"cog":270}`, time.Now().Unix()))
	f.Add(`{"_type":"lwt","tst":1700000000}`)
	f.Add(`{"_type":"location","lat":43.2,"lon":76.9}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/ingest/owntracks", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("fz-1", tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		ingestAnswerOK(t, rec)
		if rec.Code == 200 && rec.Body.String() != "[]" {
			t.Fatalf("OwnTracks expects [] on success, got %s", rec.Body)
		}
	})
}

// FuzzPositionMessages: what terminals and maps send on the positions
// socket and in batches, through the same decoding as the handlers.
func FuzzPositionMessages(f *testing.F) {
	f.Add([]byte(`{"type":"subscribe","bbox":[76.8,43.1,77.1,43.4],"agency":"police","statuses":["available"]}`))
	f.Add([]byte(`{"type":"position","id":"1","lat":43.241,"lon":76.941,"accuracy":4,"time":"2026-11-25T10:00:00Z"}`))
	f.Add([]byte(`{"fixes":[{"unit_id":"P1","lat":43.2,"lon":76.9,"speed":8.5,"heading":90,"battery":50}]}`))
	f.Add([]byte(`{"type":"subscribe","bbox":[1e400,0,0,0]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m posMessage
		if json.Unmarshal(b, &m) == nil {
			if len(m.BBox) == 4 {
				bb := gis.BBox{MinLon: m.BBox[0], MinLat: m.BBox[1], MaxLon: m.BBox[2], MaxLat: m.BBox[3]}
				if bb.Valid() == nil && (bb.MinLat > bb.MaxLat || bb.MinLon > bb.MaxLon) {
					t.Fatalf("inverted bbox accepted: %+v", bb)
				}
			}
			checkFix(t, &m.positionRequest)
		}
		req := httptest.NewRequest("POST", "/api/v1/positions/batch", bytes.NewReader(b))
		var in batchRequest
		if decode(req, maxBatchBody, &in) == nil {
			for i := range in.Fixes {
				checkFix(t, &in.Fixes[i])
			}
		}
	})
}

func checkFix(t *testing.T, p *positionRequest) {
	fix, err := p.fix("device:x")
	if err != nil {
		return
	}
	if fix.Validate(time.Now(), gis.FixRules{}) == nil {
		if fix.Lat < -90 || fix.Lat > 90 || fix.Lon < -180 || fix.Lon > 180 {
			t.Fatalf("out-of-range fix valid: %+v", fix)
		}
		if _, err := json.Marshal(fix); err != nil {
			t.Fatalf("valid fix does not encode: %v", err)
		}
	}
}

func TestCamerasNear(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Three cameras 100 m, 300 m and 2 km east of the square (registered by
	// the video side through the tracker).
	for i, m := range []float64{300, 2000, 100} {
		c := gis.Camera{ID: fmt.Sprintf("cam-%d", i), Lat: almatyLat, Lon: almatyLon + m/81000, Heading: 90, FOV: 60, Name: "Абая / Фурманова"}
		if err := f.srv.gis.tr.SetCamera(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	a := f.do("GET", fmt.Sprintf("/api/v1/cameras/near?lat=%f&lon=%f&radius=500", almatyLat, almatyLon), f.tokens[auth.RoleViewer], nil)
	var out struct{ Cameras []gis.CameraHit }
	json.Unmarshal(a.body, &out)
	if a.status != 200 || len(out.Cameras) != 2 || out.Cameras[0].ID != "cam-2" || out.Cameras[1].ID != "cam-0" ||
		out.Cameras[0].Distance > out.Cameras[1].Distance || !near(out.Cameras[0].Distance, 100, 2) {
		t.Fatalf("cameras within 500 m: %d %s", a.status, a.body)
	}
	if a := f.do("GET", fmt.Sprintf("/api/v1/cameras/near?lat=%f&lon=%f&radius=5000&limit=1", almatyLat, almatyLon), f.tokens[auth.RoleDispatcher], nil); a.status != 200 || strings.Count(string(a.body), `"id"`) != 1 {
		t.Fatalf("limit: %d %s", a.status, a.body)
	}
	for _, q := range []string{"lon=76.9", "lat=43.2", "lat=95&lon=76.9", "lat=43.2&lon=76.9&radius=0", "lat=43.2&lon=76.9&radius=1e9", "lat=x&lon=76.9"} {
		if a := f.do("GET", "/api/v1/cameras/near?"+q, f.tokens[auth.RoleViewer], nil); a.status != 400 {
			t.Errorf("%s: %d %s", q, a.status, a.body)
		}
	}
}

// recommendationView and recommendationsAnswer are the recommendations
// answer as Go values, for encoding/json to compare with.
type recommendationView struct {
	gis.Recommendation
	Pick dispatch.RecPick `json:"pick"`
}

type recommendationsAnswer struct {
	IncidentID      string               `json:"incident_id"`
	Location        dispatch.Location    `json:"location"`
	Recommendations []recommendationView `json:"recommendations"`
}

func roundTo(x float64, d int) float64 {
	p := math.Pow10(d)
	if n := math.Round(x * p); math.Abs(n) < 1<<53 {
		return n / p
	}
	return x
}

// TestRecommendationsJSON: the hand-written recommendations answer decodes
// to exactly what encoding/json makes of the same values, with and without
// the optional members, for awkward strings and numbers.
func TestRecommendationsJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	words := []string{"", "P-12", "Қ\"\\\n", "bad\xffutf8", "\u2028", "k9"}
	word := func() string { return words[rng.IntN(len(words))] }
	num := func() float64 {
		return []float64{0, 1e-9, 43.23894917, -76.55, 1e22, 1234.5678, rng.Float64() * 1e4}[rng.IntN(7)]
	}
	for range 300 {
		loc := dispatch.Location{Lat: num(), Lon: num(), Accuracy: num(), Source: word(), Address: word(), Sector: word()}
		recs := make([]gis.Recommendation, rng.IntN(4))
		views := make([]recommendationView, len(recs))
		for i := range recs {
			rc := gis.Recommendation{Rank: i + 1, UnitID: word(), Label: word(), Agency: word(), Kind: word(), Status: word(),
				Position: gis.Point{Lat: num(), Lon: num()}, DistanceM: num(),
				ETA:          gis.ETA{Seconds: num(), Metres: num(), Source: word(), Fallback: word()},
				CapabilityOK: rng.IntN(2) == 0, PositionAgeS: num(), PositionTime: time.Unix(rng.Int64N(2e9), rng.Int64N(1e9)).UTC(),
				PositionStale: rng.IntN(2) == 0, AccuracyM: num()}
			for range rng.IntN(3) {
				rc.MissingCaps = append(rc.MissingCaps, word())
			}
			recs[i] = rc
			views[i] = recommendationView{Recommendation: rc, Pick: dispatch.RecPick{Rank: rc.Rank, DistanceM: rc.DistanceM, ETASec: rc.ETA.Seconds, Source: rc.ETA.Source}}
		}
		id := word()
		// The answer rounds coordinates to 7 decimals, metres and seconds to 1.
		rl := loc
		rl.Lat, rl.Lon, rl.Accuracy = roundTo(loc.Lat, 7), roundTo(loc.Lon, 7), roundTo(loc.Accuracy, 1)
		for i := range views {
			v := &views[i]
			v.Position = gis.Point{Lat: roundTo(v.Position.Lat, 7), Lon: roundTo(v.Position.Lon, 7)}
			v.DistanceM, v.ETA.Seconds, v.ETA.Metres = roundTo(v.DistanceM, 1), roundTo(v.ETA.Seconds, 1), roundTo(v.ETA.Metres, 1)
			v.PositionAgeS, v.AccuracyM = roundTo(v.PositionAgeS, 1), roundTo(v.AccuracyM, 1)
			v.Pick.DistanceM, v.Pick.ETASec = roundTo(v.Pick.DistanceM, 1), roundTo(v.Pick.ETASec, 1)
		}
		want, err := json.Marshal(recommendationsAnswer{IncidentID: id, Location: rl, Recommendations: views})
		if err != nil {
			t.Fatal(err)
		}
		got := appendRecommendations(nil, id, loc, recs)
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, got)
		}
		_ = json.Unmarshal(want, &w)
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("hand-written:\n%s\nencoding/json:\n%s", got, want)
		}
	}
}
