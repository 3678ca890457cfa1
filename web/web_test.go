package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/dispatch/journal/filejournal"
	"github.com/kuzet/kuzet/gis"
	"github.com/kuzet/kuzet/internal/auth"
)

// fixture is a running server with one user per role, a unit, a call and
// an incident the unit is assigned to.
type fixture struct {
	t      testing.TB
	srv    *Server
	svc    *dispatch.Service
	http   *httptest.Server
	tokens map[auth.Role]string
	unit   string
	call   string
	inc    string
}

var (
	passwords    = "fixture-password-1"
	hashOnce     sync.Once
	passwordHash string
)

func newFixture(t *testing.T) *fixture { return newFixtureTB(t) }

// newBenchFixture is the same fixture for benchmarks.
func newBenchFixture(b *testing.B) *fixture { return newFixtureTB(b) }

func newFixtureTB(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	j, err := filejournal.Open(filejournal.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	sectors := gis.NewSectorIndex()
	svc, err := dispatch.New(dispatch.Config{Journal: j, TimerInterval: -1, Sector: func(lat, lon float64) string {
		if s, ok := sectors.Lookup(gis.Point{Lat: lat, Lon: lon}); ok {
			return s.ID
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	authn, _ := auth.New(auth.Config{Store: store, MaxFailures: 1000})
	feed, _ := gis.NewFeed(gis.FeedConfig{})
	tr, err := gis.NewTracker(context.Background(), gis.TrackerConfig{OnUpdate: feed.Publish}) // embedded: fast
	if err != nil {
		t.Fatal(err)
	}
	vf := newVideoFixture(t, svc) // video_test.go
	srv, err := New(Config{Dispatch: svc, Auth: authn, ClientQueue: 512 << 10, WriteTimeout: 2 * time.Second,
		Tracker: tr, GIS: GISConfig{Sectors: sectors, Feed: feed, Watch: gis.WatcherConfig{Interval: 50 * time.Millisecond}},
		Intake: intakeFixtureConfig(t, dir), Video: vf.srv, Cameras: vf.cams, VideoAudit: vf.audit})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	gctx, stopGIS := context.WithCancel(context.Background())
	gisDone := make(chan struct{})
	go func() { defer close(gisDone); _ = srv.RunGIS(gctx) }()
	hs := httptest.NewServer(srv.Handler())
	f := &fixture{t: t, srv: srv, svc: svc, http: hs, tokens: map[auth.Role]string{}, unit: "P101"}
	t.Cleanup(func() {
		hs.Close()
		srv.Drain(context.Background())
		stopGIS()
		<-gisDone
		vf.close() // video views end and are journalled before the service closes
		svc.Close()
		j.Close()
	})
	ctx := context.Background()
	hashOnce.Do(func() { passwordHash, _ = auth.HashPassword(passwords) })
	for _, role := range auth.Roles {
		unit := ""
		if role == auth.RoleOfficer {
			unit = f.unit
		}
		name := string(role) + "1"
		// Users and sessions go straight into the store: argon2id for every
		// fixture would make the suite slow; TestSignIn covers the real path.
		if err := store.PutUser(ctx, auth.User{Username: name, Role: role, UnitID: unit, PasswordHash: passwordHash, CreatedAt: time.Now()}, true); err != nil {
			t.Fatal(err)
		}
		tok, hash := auth.NewToken()
		if err := store.PutSession(ctx, auth.Session{TokenHash: hash, Username: name, Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		f.tokens[role] = tok
	}
	sup := dispatch.Meta{Actor: dispatch.Actor{ID: "user:supervisor1", Supervisor: true}}
	if _, err := svc.RegisterUnit(ctx, sup, dispatch.UnitSpec{ID: f.unit, CallSign: "Беркут-101", Agency: "police", Kind: "car"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetShift(ctx, sup, f.unit, true); err != nil {
		t.Fatal(err)
	}
	_, tok, err := authn.AddDevice(ctx, "tablet-1", f.unit, "")
	if err != nil {
		t.Fatal(err)
	}
	f.tokens[auth.RoleDevice] = tok
	c, _ := svc.CreateCall(ctx, sup, dispatch.NewCall{Channel: dispatch.ChannelPhone, CallerNumber: "+77011234567"})
	f.call = c.ID
	in, err := svc.CreateIncident(ctx, sup, dispatch.NewIncident{Type: "ASSAULT", Location: dispatch.Location{Lat: 43.24, Lon: 76.95}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Assign(ctx, sup, in.ID, dispatch.AssignRequest{UnitIDs: []string{f.unit}}); err != nil {
		t.Fatal(err)
	}
	f.inc = in.ID
	return f
}

type answer struct {
	status int
	body   []byte
	err    apiError
}

func (f *fixture) do(method, path, token string, body any, hdr ...string) answer {
	f.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, _ := json.Marshal(b)
		rd = bytes.NewReader(enc)
	}
	req, _ := http.NewRequest(method, f.http.URL+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode}
	a.body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(a.body, &a.err); err != nil || a.err.Code == "" || a.err.Message == "" {
			f.t.Errorf("%s %s: error answer %d is not {code, message}: %s", method, path, resp.StatusCode, a.body)
		}
	}
	return a
}

// matrix is the access policy, written out by hand: which roles may call
// each endpoint. The test fails if a route is missing here or the server
// disagrees. Other areas add their rows from their own test files with
// addMatrix in an init function.
var matrix = map[string]string{
	"DELETE /api/v1/sessions/current":                    "calltaker dispatcher supervisor viewer officer admin device gateway",
	"GET /api/v1/me":                                     "calltaker dispatcher supervisor viewer officer admin device gateway",
	"GET /api/v1/catalogue":                              "calltaker dispatcher supervisor viewer officer admin device",
	"GET /api/v1/calls":                                  "calltaker dispatcher supervisor viewer",
	"POST /api/v1/calls":                                 "calltaker dispatcher supervisor",
	"GET /api/v1/calls/{id}":                             "calltaker dispatcher supervisor viewer",
	"POST /api/v1/calls/{id}/answer":                     "calltaker dispatcher supervisor",
	"POST /api/v1/calls/{id}/end":                        "calltaker dispatcher supervisor",
	"PUT /api/v1/calls/{id}/location":                    "calltaker dispatcher supervisor",
	"GET /api/v1/incidents":                              "calltaker dispatcher supervisor viewer officer device",
	"POST /api/v1/incidents":                             "calltaker dispatcher supervisor",
	"GET /api/v1/incidents/{id}":                         "calltaker dispatcher supervisor viewer officer device",
	"PATCH /api/v1/incidents/{id}":                       "calltaker dispatcher supervisor",
	"POST /api/v1/incidents/{id}/notes":                  "calltaker dispatcher supervisor officer device",
	"POST /api/v1/incidents/{id}/status":                 "dispatcher supervisor",
	"POST /api/v1/incidents/{id}/calls":                  "calltaker dispatcher supervisor",
	"POST /api/v1/incidents/{id}/assignments":            "dispatcher supervisor",
	"POST /api/v1/incidents/{id}/assignments/{unit}/ack": "dispatcher supervisor officer device",
	"DELETE /api/v1/incidents/{id}/assignments/{unit}":   "dispatcher supervisor officer device",
	"GET /api/v1/units":                                  "calltaker dispatcher supervisor viewer officer admin device",
	"POST /api/v1/units":                                 "supervisor admin",
	"GET /api/v1/units/{id}":                             "calltaker dispatcher supervisor viewer officer admin device",
	"PUT /api/v1/units/{id}":                             "supervisor admin",
	"POST /api/v1/units/{id}/status":                     "dispatcher supervisor officer device",
	"POST /api/v1/units/{id}/shift":                      "dispatcher supervisor officer device",
	"POST /api/v1/units/{id}/devices":                    "supervisor admin",
	"GET /api/v1/alerts":                                 "calltaker dispatcher supervisor viewer",
	"GET /api/v1/users":                                  "admin",
	"POST /api/v1/users":                                 "admin",
}

func addMatrix(rows map[string]string) {
	for k, v := range rows {
		matrix[k] = v
	}
}

var allRoles = append(append([]auth.Role{}, auth.Roles...), auth.RoleDevice)

func TestRoleMatrix(t *testing.T) {
	f := newFixture(t)
	seen := map[string]bool{}
	for _, rt := range f.srv.routes {
		key := rt.method + " " + rt.pattern
		if rt.public {
			continue
		}
		seen[key] = true
		policy, ok := matrix[key]
		if !ok {
			t.Errorf("route %s has no row in the access matrix", key)
			continue
		}
		path := strings.NewReplacer("{id}", f.pathID(rt.pattern), "{unit}", f.unit).Replace(rt.pattern)
		t.Run(key, func(t *testing.T) {
			if a := f.do(rt.method, path, "", "{}"); a.status != http.StatusUnauthorized {
				t.Errorf("anonymous: %d, want 401", a.status)
			}
			if a := f.do(rt.method, path, "not-a-token", "{}"); a.status != http.StatusUnauthorized {
				t.Errorf("bad token: %d, want 401", a.status)
			}
			for _, role := range allRoles {
				if rt.method == "DELETE" && rt.pattern == "/api/v1/sessions/current" {
					continue // signing out would spoil the other rows; tested below
				}
				a := f.do(rt.method, path, f.tokens[role], "{}")
				allowed := strings.Contains(" "+policy+" ", " "+string(role)+" ")
				denied := a.status == http.StatusForbidden && a.err.Code == "role_forbidden"
				if allowed && denied {
					t.Errorf("%s denied, policy allows: %s", role, a.body)
				}
				if !allowed && !denied {
					t.Errorf("%s got %d %s, policy denies", role, a.status, a.body)
				}
			}
		})
	}
	for key := range matrix {
		if !seen[key] {
			t.Errorf("matrix row %s names no route", key)
		}
	}
	// Signing out ends the session for every role.
	for _, role := range auth.Roles {
		if a := f.do("DELETE", "/api/v1/sessions/current", f.tokens[role], nil); a.status != http.StatusNoContent {
			t.Errorf("sign out %s: %d", role, a.status)
		}
		if a := f.do("GET", "/api/v1/me", f.tokens[role], nil); a.status != http.StatusUnauthorized {
			t.Errorf("%s token still works after sign-out: %d", role, a.status)
		}
	}
}

func (f *fixture) pathID(pattern string) string {
	switch {
	case strings.HasPrefix(pattern, "/api/v1/calls/"):
		return f.call
	case strings.HasPrefix(pattern, "/api/v1/incidents/"):
		return f.inc
	default:
		return f.unit
	}
}

func TestOfficerSeesOnlyOwnUnit(t *testing.T) {
	f := newFixture(t)
	sup := dispatch.Meta{Actor: dispatch.Actor{ID: "user:supervisor1", Supervisor: true}}
	other, _ := f.svc.CreateIncident(context.Background(), sup, dispatch.NewIncident{Type: "THEFT", Location: dispatch.Location{Lat: 43.2, Lon: 76.9}})
	for _, role := range []auth.Role{auth.RoleOfficer, auth.RoleDevice} {
		tok := f.tokens[role]
		if a := f.do("GET", "/api/v1/incidents/"+other.ID, tok, nil); a.status != http.StatusForbidden {
			t.Errorf("%s reads another unit's incident: %d", role, a.status)
		}
		var list struct{ Incidents []dispatch.Incident }
		a := f.do("GET", "/api/v1/incidents", tok, nil)
		json.Unmarshal(a.body, &list)
		if len(list.Incidents) != 1 || list.Incidents[0].ID != f.inc {
			t.Errorf("%s lists %d incidents, want only its own", role, len(list.Incidents))
		}
		if a := f.do("POST", "/api/v1/units/OTHER/status", tok, map[string]string{"status": "on_scene"}); a.status != http.StatusForbidden && a.status != http.StatusNotFound {
			t.Errorf("%s changes another unit: %d", role, a.status)
		}
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	f := newFixture(t)
	tok := f.tokens[auth.RoleDispatcher]
	before := f.svc.Applied()
	cases := []struct {
		name, method, path string
		body               any
		ctype              string
		status             int
		code               string
	}{
		{"malformed JSON", "POST", "/api/v1/incidents", `{"type":`, "", 400, "malformed_json"},
		{"two values", "POST", "/api/v1/incidents", `{} {}`, "", 400, "malformed_json"},
		{"unknown field", "POST", "/api/v1/incidents", `{"type":"THEFT","location":{"lat":43,"lon":76},"colour":"red"}`, "", 400, "unknown_field"},
		{"wrong type", "POST", "/api/v1/incidents", `{"type":"THEFT","priority":"high","location":{"lat":43,"lon":76}}`, "", 400, "wrong_type"},
		{"empty body", "POST", "/api/v1/incidents", ``, "", 400, "empty_body"},
		{"oversize body", "POST", "/api/v1/incidents", `{"narrative":"` + strings.Repeat("ж", 40_000) + `"}`, "", 413, "body_too_large"},
		{"form body", "POST", "/api/v1/incidents", `type=THEFT`, "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		{"latitude out of range", "POST", "/api/v1/incidents", `{"type":"THEFT","location":{"lat":95,"lon":76}}`, "", 422, "invalid"},
		{"longitude out of range", "POST", "/api/v1/calls", `{"channel":"phone","location":{"lat":43,"lon":-190}}`, "", 422, "invalid"},
		{"unknown type", "POST", "/api/v1/incidents", `{"type":"UFO","location":{"lat":43,"lon":76}}`, "", 422, "invalid"},
		{"unknown channel", "POST", "/api/v1/calls", `{"channel":"pigeon"}`, "", 422, "invalid"},
		{"unknown incident", "POST", "/api/v1/incidents/nope/assignments", `{"unit_ids":["P101"]}`, "", 404, "not_found"},
		{"unknown unit", "POST", "/api/v1/incidents/" + f.inc + "/assignments", `{"unit_ids":["ghost"]}`, "", 404, "not_found"},
		{"unknown call", "POST", "/api/v1/calls/nope/answer", nil, "", 404, "not_found"},
		{"illegal incident transition", "POST", "/api/v1/incidents/" + f.inc + "/status", `{"status":"queued"}`, "", 409, "transition_not_allowed"},
		{"illegal unit transition", "POST", "/api/v1/units/P101/status", `{"status":"transporting"}`, "", 409, "transition_not_allowed"},
		{"busy unit", "POST", "/api/v1/incidents", `{"type":"THEFT","location":{"lat":43,"lon":76}}`, "", 201, ""}, // creates one, checked below
		{"bad limit", "GET", "/api/v1/incidents?limit=0", nil, "", 400, "bad_limit"},
		{"long idempotency key", "POST", "/api/v1/calls", `{"channel":"phone"}`, "", 400, "bad_idempotency_key"},
		{"no such endpoint", "GET", "/api/v1/nothing", nil, "", 404, "no_such_endpoint"},
	}
	created := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := []string{}
			if c.ctype != "" {
				hdr = append(hdr, "Content-Type", c.ctype)
			}
			if c.name == "long idempotency key" {
				hdr = append(hdr, "Idempotency-Key", strings.Repeat("k", 200))
			}
			a := f.do(c.method, c.path, tok, c.body, hdr...)
			if a.status != c.status || a.err.Code != c.code {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, c.status, c.code)
			}
			if c.status == 201 {
				created++
			}
		})
	}
	// All rejected commands together changed nothing: only the one created
	// incident added a record.
	if got := f.svc.Applied() - before; got != uint64(created) {
		t.Fatalf("rejected requests appended %d records", got-uint64(created))
	}
	// Assigning the busy unit elsewhere: 409 with what to do.
	var in dispatch.Incident
	json.Unmarshal(f.do("POST", "/api/v1/incidents", tok, `{"type":"THEFT","location":{"lat":43,"lon":76}}`).body, &in)
	a := f.do("POST", "/api/v1/incidents/"+in.ID+"/assignments", tok, `{"unit_ids":["P101"]}`)
	if a.status != 409 || a.err.Code != "unit_busy" || !strings.Contains(a.err.Message, "pre-empt") {
		t.Fatalf("busy unit: %d %s", a.status, a.body)
	}
}

func TestIdempotencyKeyOverHTTP(t *testing.T) {
	f := newFixture(t)
	tok := f.tokens[auth.RoleCallTaker]
	body := `{"type":"NOISE","location":{"lat":43.25,"lon":76.92}}`
	a := f.do("POST", "/api/v1/incidents", tok, body, "Idempotency-Key", "0192f7c4-6e6b-7cc1-9a55-1c4d2f0a7b11")
	b := f.do("POST", "/api/v1/incidents", tok, body, "Idempotency-Key", "0192f7c4-6e6b-7cc1-9a55-1c4d2f0a7b11")
	if a.status != 201 || b.status != 201 || !bytes.Equal(jsonField(a.body, "id"), jsonField(b.body, "id")) {
		t.Fatalf("retry: %d %s / %d %s", a.status, a.body, b.status, b.body)
	}
	// Another user's identical key is a different command.
	c := f.do("POST", "/api/v1/incidents", f.tokens[auth.RoleDispatcher], body, "Idempotency-Key", "0192f7c4-6e6b-7cc1-9a55-1c4d2f0a7b11")
	if c.status != 201 || bytes.Equal(jsonField(a.body, "id"), jsonField(c.body, "id")) {
		t.Fatalf("keys must be per user: %s", c.body)
	}
	d := f.do("POST", "/api/v1/incidents", tok, `{"type":"THEFT","location":{"lat":43.25,"lon":76.92}}`, "Idempotency-Key", "0192f7c4-6e6b-7cc1-9a55-1c4d2f0a7b11")
	if d.status != 422 || d.err.Code != "idempotency_key_reused" {
		t.Fatalf("reuse: %d %s", d.status, d.body)
	}
}

func jsonField(b []byte, name string) []byte {
	var m map[string]json.RawMessage
	json.Unmarshal(b, &m)
	return m[name]
}

func TestSignIn(t *testing.T) {
	f := newFixture(t)
	if a := f.do("POST", "/api/v1/sessions", "", `{"username":"dispatcher1","password":"wrong-password"}`); a.status != 401 || a.err.Code != "bad_credentials" {
		t.Fatalf("wrong password: %d %s", a.status, a.body)
	}
	if a := f.do("POST", "/api/v1/sessions", "", `{"username":"nobody","password":"whatever-it-is"}`); a.status != 401 || a.err.Code != "bad_credentials" {
		t.Fatalf("unknown user: %d %s", a.status, a.body)
	}
	a := f.do("POST", "/api/v1/sessions", "", fmt.Sprintf(`{"username":"dispatcher1","password":%q}`, passwords))
	if a.status != 201 || len(jsonField(a.body, "token")) < 40 {
		t.Fatalf("sign in: %d %s", a.status, a.body)
	}
}
