package web

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/kuzet/kuzet/video/videotest"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/redis/go-redis/v9"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/dispatch/journal"
	"github.com/kuzet/kuzet/internal/auth"
	"github.com/kuzet/kuzet/internal/redistest"
	"github.com/kuzet/kuzet/video"
)

func init() {
	addMatrix(map[string]string{
		"POST /whip/{stream}":              "officer device",
		"DELETE /whip/{stream}/{session}":  "officer device",
		"PATCH /whip/{stream}/{session}":   "officer device",
		"POST /whep/{stream}":              "calltaker dispatcher supervisor viewer",
		"DELETE /whep/{stream}/{session}":  "calltaker dispatcher supervisor viewer officer device",
		"PATCH /whep/{stream}/{session}":   "calltaker dispatcher supervisor viewer officer device",
		"GET /api/v1/cameras":              "calltaker dispatcher supervisor viewer admin",
		"POST /api/v1/cameras/import":      "supervisor admin",
		"DELETE /api/v1/cameras/{id}":      "supervisor admin",
		"GET /api/v1/incidents/{id}/video": "calltaker dispatcher supervisor viewer",
		"GET /api/v1/video/ice-servers":    "calltaker dispatcher supervisor viewer officer device",
	})
}

// videoFixture is the fixture's video server: ICE on loopback, one UDP
// socket, views journalled through a VideoAudit.
type videoFixture struct {
	srv   *video.Server
	cams  *video.Cameras
	audit *VideoAudit
	close func()
}

// videoFixtureMod, when set, changes the next fixtures' video config
// (multi-node tests; the web tests do not run in parallel).
var videoFixtureMod func(*video.Config)

func newVideoFixture(t testing.TB, svc *dispatch.Service) *videoFixture {
	t.Helper()
	cams, err := video.NewCameras(context.Background(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	audit := NewVideoAudit(svc, logger, 0)
	cfg := video.Config{Cameras: cams, UDPMuxPort: -1, ICEHostAddresses: []string{"127.0.0.1"}, IncludeLoopback: true,
		ConnectTimeout: 3 * time.Second, GracePeriod: 200 * time.Millisecond, OnView: audit.OnView, Logger: logger}
	if videoFixtureMod != nil {
		videoFixtureMod(&cfg)
	}
	vs, err := video.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = audit.Run(ctx) }()
	var once sync.Once
	vf := &videoFixture{srv: vs, cams: cams, audit: audit}
	vf.close = func() {
		once.Do(func() {
			vs.Close()
			cancel()
			<-done
		})
	}
	t.Cleanup(vf.close) // if the fixture failed before its own cleanup
	return vf
}

// pionAPI is a test peer's WebRTC stack on loopback with the default
// interceptors, like a browser.
func pionAPI(t testing.TB) *webrtc.API {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// offer makes pc's complete offer (WHIP/WHEP do not trickle).
func offer(t testing.TB, pc *webrtc.PeerConnection) string {
	t.Helper()
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

// sdpPost sends an SDP offer with a bearer token and returns the answer.
func (f *fixture) sdpPost(path, token, sdp string) (answer, string) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.http.URL+path, strings.NewReader(sdp))
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode}
	a.body, _ = io.ReadAll(resp.Body)
	if a.status >= 400 {
		if err := json.Unmarshal(a.body, &a.err); err != nil || a.err.Code == "" {
			f.t.Errorf("POST %s: error answer %d is not {code, message}: %s", path, a.status, a.body)
		}
	}
	return a, resp.Header.Get("Location")
}

// testPublisher is a pion body-cam sending the H.264 clip of the video
// package's testdata at 25 fps over WHIP through the HTTP routes.
type testPublisher struct {
	pc       *webrtc.PeerConnection
	location string
	stop     func()
}

func clipFrames(t testing.TB) [][]byte { return videotest.Clip(t, 25) }

func (f *fixture) publish(t testing.TB, stream, token string) (*testPublisher, answer) {
	t.Helper()
	aus := clipFrames(t)
	pc, err := pionAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "bodycam")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	a, loc := f.sdpPost("/whip/"+stream, token, offer(t, pc))
	if a.status != http.StatusCreated {
		pc.Close()
		return nil, a
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(a.body)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := track.WriteSample(media.Sample{Data: aus[i%len(aus)], Duration: 40 * time.Millisecond}); err != nil && !errors.Is(err, io.ErrClosedPipe) {
				return
			}
		}
	}()
	var once sync.Once
	p := &testPublisher{pc: pc, location: loc, stop: func() { once.Do(func() { cancel(); <-done; pc.Close() }) }}
	t.Cleanup(p.stop)
	return p, a
}

// testViewer is a pion WHEP viewer counting whole frames (RTP marker bit
// after a gap-free run of packets).
type testViewer struct {
	pc       *webrtc.PeerConnection
	location string
	frames   chan int
}

func (f *fixture) watch(t testing.TB, stream, token string) (*testViewer, answer) {
	t.Helper()
	pc, err := pionAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	v := &testViewer{pc: pc, frames: make(chan int, 1000)}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		go func() {
			size, ok, have := 0, true, false
			var last uint16
			for {
				pkt, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				if have && pkt.SequenceNumber != last+1 {
					ok = false
				}
				have, last = true, pkt.SequenceNumber
				size += len(pkt.Payload)
				if pkt.Marker {
					if ok {
						select {
						case v.frames <- size:
						default:
						}
					}
					size, ok = 0, true
				}
			}
		}()
	})
	a, loc := f.sdpPost("/whep/"+stream, token, offer(t, pc))
	if a.status != http.StatusCreated {
		pc.Close()
		return nil, a
	}
	v.location = loc
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(a.body)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return v, a
}

func (v *testViewer) frame(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case <-v.frames:
	case <-time.After(within):
		t.Fatalf("no whole frame within %v", within)
	}
}

// videoViews returns the video.viewed records in the journal.
func (f *fixture) videoViews() []dispatch.VideoViewed {
	f.t.Helper()
	var out []dispatch.VideoViewed
	err := f.svc.Journal().Read(context.Background(), 0, func(r journal.Record) error {
		if r.Type == dispatch.EvVideoViewed {
			var v dispatch.VideoViewed
			if err := json.Unmarshal(r.Data, &v); err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// TestVideoEndToEnd: a pion body-cam publishes the unit's stream over WHIP,
// a dispatcher watches it over WHEP through the same routes a browser uses,
// the incident lists the live body-cam, and the view lands in the journal
// with both its start and its end.
func TestVideoEndToEnd(t *testing.T) {
	f := newFixture(t)
	stream := "unit:" + f.unit
	pub, a := f.publish(t, stream, f.tokens[auth.RoleDevice])
	if pub == nil {
		t.Fatalf("WHIP: %d %s", a.status, a.body)
	}
	if !strings.HasPrefix(pub.location, "/whip/"+stream+"/") {
		t.Fatalf("WHIP Location %q", pub.location)
	}
	// The incident's video list has the assigned unit's live body-cam.
	var iv incidentVideo
	b := f.do("GET", "/api/v1/incidents/"+f.inc+"/video", f.tokens[auth.RoleDispatcher], nil)
	if err := json.Unmarshal(b.body, &iv); err != nil || b.status != 200 {
		t.Fatalf("incident video: %d %s", b.status, b.body)
	}
	if len(iv.BodyCams) != 1 || iv.BodyCams[0].StreamID != stream || iv.BodyCams[0].CallSign != "Беркут-101" {
		t.Fatalf("incident video lists %+v, want the live body-cam %s", iv.BodyCams, stream)
	}

	v, a := f.watch(t, stream, f.tokens[auth.RoleDispatcher])
	if v == nil {
		t.Fatalf("WHEP: %d %s", a.status, a.body)
	}
	for range 10 {
		v.frame(t, 5*time.Second)
	}
	// Another viewer may not end the dispatcher's view; the dispatcher may.
	if a := f.do("DELETE", v.location, f.tokens[auth.RoleViewer], nil); a.status != http.StatusForbidden || a.err.Code != "forbidden" {
		t.Fatalf("viewer ends another's session: %d %s", a.status, a.body)
	}
	// Trickle ICE on the session: only its owner; a JSON body is refused.
	if a := f.do("PATCH", v.location, f.tokens[auth.RoleViewer], nil); a.status != http.StatusForbidden {
		t.Fatalf("viewer PATCHes another's session: %d %s", a.status, a.body)
	}
	if a := f.do("PATCH", v.location, f.tokens[auth.RoleDispatcher], nil); a.status != http.StatusUnsupportedMediaType {
		t.Fatalf("PATCH with JSON: %d %s", a.status, a.body)
	}
	if a := f.do("DELETE", v.location, f.tokens[auth.RoleDispatcher], nil); a.status != http.StatusOK {
		t.Fatalf("DELETE view: %d %s", a.status, a.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	var views []dispatch.VideoViewed
	for time.Now().Before(deadline) {
		views = f.videoViews()
		if len(views) >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond) // the audit queue is asynchronous by design; poll the journal
	}
	if len(views) != 2 {
		t.Fatalf("journal has %d video.viewed records, want start and end", len(views))
	}
	start, end := views[0], views[1]
	if start.EndedAt != nil || end.EndedAt == nil || end.SessionID != start.SessionID || end.StreamID != stream ||
		end.Viewer != "user:dispatcher1" || end.Role != "dispatcher" || !strings.HasPrefix(end.Remote, "127.0.0.1:") ||
		end.Reason != "delete" || end.EndedAt.Before(end.StartedAt) {
		t.Fatalf("views: %+v / %+v", start, end)
	}

	// The stream ends with its publisher and leaves the incident's list.
	if a := f.do("DELETE", pub.location, f.tokens[auth.RoleDevice], nil); a.status != http.StatusOK {
		t.Fatalf("DELETE publisher: %d %s", a.status, a.body)
	}
	b = f.do("GET", "/api/v1/incidents/"+f.inc+"/video", f.tokens[auth.RoleDispatcher], nil)
	json.Unmarshal(b.body, &iv)
	if len(iv.BodyCams) != 0 {
		t.Fatalf("ended body-cam still listed: %s", b.body)
	}
	// Metrics are exported on the server's registry.
	m := f.do("GET", "/metrics", "", nil)
	for _, name := range []string{"kuzet_video_packets_in_total", "kuzet_video_packets_forwarded_total", "kuzet_video_viewers", "kuzet_video_audit_dropped_total"} {
		if !strings.Contains(string(m.body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestVideoRoles: who may publish which stream and who may watch, beyond
// the role matrix (which only checks role_forbidden).
func TestVideoRoles(t *testing.T) {
	f := newFixture(t)
	own := "unit:" + f.unit
	sdp := func() string {
		pc, err := pionAPI(t).NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		track, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, "v", "s")
		pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		return offer(t, pc)
	}()
	cases := []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"anonymous publisher", "/whip/" + own, "", 401, "unauthenticated"},
		{"bad token", "/whip/" + own, "nope", 401, "invalid_token"},
		{"viewer may not publish", "/whip/" + own, f.tokens[auth.RoleViewer], 403, "role_forbidden"},
		{"dispatcher may not publish", "/whip/" + own, f.tokens[auth.RoleDispatcher], 403, "role_forbidden"},
		{"officer publishes another unit", "/whip/unit:P999", f.tokens[auth.RoleOfficer], 403, "forbidden"},
		{"device publishes another unit", "/whip/unit:P999", f.tokens[auth.RoleDevice], 403, "forbidden"},
		{"officer publishes a camera", "/whip/camera:c1", f.tokens[auth.RoleOfficer], 403, "forbidden"},
		{"anonymous viewer", "/whep/" + own, "", 401, "unauthenticated"},
		{"officer may not watch", "/whep/" + own, f.tokens[auth.RoleOfficer], 403, "role_forbidden"},
		{"admin may not watch", "/whep/" + own, f.tokens[auth.RoleAdmin], 403, "role_forbidden"},
		{"unknown camera", "/whep/camera:nope", f.tokens[auth.RoleViewer], 404, "unknown_camera"},
		{"body-cam not live", "/whep/" + own, f.tokens[auth.RoleViewer], 404, "stream_not_live"},
		{"bad stream id", "/whep/tv:1", f.tokens[auth.RoleViewer], 400, "bad_stream_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, _ := f.sdpPost(c.path, c.token, sdp)
			if a.status != c.status || a.err.Code != c.code {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, c.status, c.code)
			}
		})
	}
	// The officer publishes its own unit; a second publisher is refused.
	p, a := f.publish(t, own, f.tokens[auth.RoleOfficer])
	if p == nil {
		t.Fatalf("officer publishes own unit: %d %s", a.status, a.body)
	}
	if p2, a := f.publish(t, own, f.tokens[auth.RoleDevice]); p2 != nil || a.status != http.StatusConflict {
		t.Fatalf("second publisher: %d %s", a.status, a.body)
	}
	// Only the publisher (or a supervisor) ends its session.
	if a := f.do("DELETE", p.location, f.tokens[auth.RoleDevice], nil); a.status != http.StatusForbidden {
		t.Fatalf("device ends the officer's session: %d %s", a.status, a.body)
	}
	if a := f.do("DELETE", p.location, f.tokens[auth.RoleOfficer], nil); a.status != http.StatusOK {
		t.Fatalf("officer ends own session: %d %s", a.status, a.body)
	}
}

// TestCameraAPI: imports are all-or-nothing with every bad row named; the
// API never shows an RTSP URL; the incident lists the nearest cameras.
func TestCameraAPI(t *testing.T) {
	f := newFixture(t)
	sup := f.tokens[auth.RoleSupervisor]
	bad := "id,name,lat,lon,heading,fov,rtsp_url\n" +
		"c1,Абай/Достык,43.2401,76.9501,90,60,rtsp://admin:s3cret@10.1.1.1/stream1\n" +
		"c2,bad lat,143.0,76.95,0,60,rtsp://10.1.1.2/stream1\n" +
		"c3,no url,43.24,76.95,0,60,\n"
	a := f.do("POST", "/api/v1/cameras/import", sup, bad, "Content-Type", "text/csv")
	var rows struct {
		Code string
		Rows []rowError
	}
	json.Unmarshal(a.body, &rows)
	if a.status != 422 || rows.Code != "invalid_rows" || len(rows.Rows) != 2 || rows.Rows[0].Row != 3 || rows.Rows[1].Row != 4 ||
		!strings.Contains(rows.Rows[0].Error, "lat") || !strings.Contains(rows.Rows[1].Error, "rtsp_url") {
		t.Fatalf("bad rows: %d %s", a.status, a.body)
	}
	if strings.Contains(string(a.body), "s3cret") {
		t.Fatalf("import error shows credentials: %s", a.body)
	}
	if n := len(f.srv.cfg.Cameras.List()); n != 0 {
		t.Fatalf("a rejected import stored %d cameras", n)
	}
	if a := f.do("POST", "/api/v1/cameras/import", sup, `[{"id":"x","lat":1}`, "Content-Type", "application/json"); a.status != 422 {
		t.Fatalf("broken JSON: %d %s", a.status, a.body)
	}
	if a := f.do("POST", "/api/v1/cameras/import", sup, "id=1", "Content-Type", "application/x-www-form-urlencoded"); a.status != 415 {
		t.Fatalf("form: %d %s", a.status, a.body)
	}

	good := `[{"id":"c1","name":"Абай/Достык","lat":43.2401,"lon":76.9501,"heading":90,"fov":60,"rtsp_url":"rtsp://admin:s3cret@10.1.1.1/stream1","substream_url":"rtsp://admin:s3cret@10.1.1.1/stream2","agency":"city"},
	          {"id":"c2","name":"far","lat":43.30,"lon":76.95,"heading":0,"fov":60,"rtsp_url":"rtsp://admin:s3cret@10.1.1.2/stream1"}]`
	if a := f.do("POST", "/api/v1/cameras/import", sup, good, "Content-Type", "application/json"); a.status != 200 || string(jsonField(a.body, "imported")) != "2" {
		t.Fatalf("import: %d %s", a.status, a.body)
	}
	list := f.do("GET", "/api/v1/cameras", f.tokens[auth.RoleViewer], nil)
	if list.status != 200 || !strings.Contains(string(list.body), `"stream":"camera:c1"`) {
		t.Fatalf("list: %d %s", list.status, list.body)
	}
	var iv incidentVideo
	b := f.do("GET", "/api/v1/incidents/"+f.inc+"/video?radius=2000", f.tokens[auth.RoleCallTaker], nil)
	json.Unmarshal(b.body, &iv)
	if b.status != 200 || len(iv.Cameras) != 1 || iv.Cameras[0].ID != "c1" || iv.Cameras[0].Distance < 10 || iv.Cameras[0].Distance > 200 {
		t.Fatalf("incident cameras within 2 km: %d %s", b.status, b.body)
	}
	for _, body := range [][]byte{list.body, b.body} {
		if s := string(body); strings.Contains(s, "rtsp") || strings.Contains(s, "s3cret") || strings.Contains(s, "10.1.1.") {
			t.Fatalf("camera JSON shows the RTSP URL: %s", s)
		}
	}
	if a := f.do("GET", "/api/v1/incidents/"+f.inc+"/video?radius=-1", f.tokens[auth.RoleCallTaker], nil); a.status != 400 {
		t.Fatalf("bad radius: %d", a.status)
	}
	if a := f.do("DELETE", "/api/v1/cameras/c1", sup, nil); a.status != 204 {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if a := f.do("DELETE", "/api/v1/cameras/c1", sup, nil); a.status != 404 {
		t.Fatalf("delete again: %d %s", a.status, a.body)
	}
	b = f.do("GET", "/api/v1/incidents/"+f.inc+"/video?radius=2000", f.tokens[auth.RoleCallTaker], nil)
	json.Unmarshal(b.body, &iv)
	if len(iv.Cameras) != 0 {
		t.Fatalf("deleted camera still near the incident: %s", b.body)
	}
	// An unreachable camera answers a clear error, not a hang.
	if err := f.srv.cfg.Cameras.Put(context.Background(), video.Camera{ID: "dead", Lat: 43.24, Lon: 76.95, RTSPURL: "rtsp://127.0.0.1:1/none"}); err != nil {
		t.Fatal(err)
	}
	v, a := f.watch(t, "camera:dead", f.tokens[auth.RoleViewer])
	if v != nil || a.status != http.StatusBadGateway || a.err.Code != "camera_unreachable" {
		t.Fatalf("unreachable camera: %d %s", a.status, a.body)
	}
}

// TestVideoTwoNodes: with the Redis stream registry, a body-cam published
// on node A is listed live in node B's incident video, and a WHEP request
// reaching node B is redirected (307) to node A's advertised URL.
func TestVideoTwoNodes(t *testing.T) {
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { rdb.Close() })
	node := func(name string) *fixture {
		videoFixtureMod = func(c *video.Config) { c.Redis, c.AdvertiseURL = rdb, "http://"+name+".invalid:8080" }
		defer func() { videoFixtureMod = nil }()
		return newFixture(t)
	}
	a, b := node("node-a"), node("node-b")
	stream := "unit:" + a.unit
	if p, ans := a.publish(t, stream, a.tokens[auth.RoleDevice]); p == nil {
		t.Fatalf("WHIP on node A: %d %s", ans.status, ans.body)
	}
	var iv incidentVideo
	r := b.do("GET", "/api/v1/incidents/"+b.inc+"/video", b.tokens[auth.RoleDispatcher], nil)
	json.Unmarshal(r.body, &iv)
	if len(iv.BodyCams) != 1 || iv.BodyCams[0].StreamID != stream {
		t.Fatalf("node B's incident video: %s", r.body)
	}
	pc, err := pionAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	req, _ := http.NewRequest("POST", b.http.URL+"/whep/"+stream, strings.NewReader(offer(t, pc)))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+b.tokens[auth.RoleDispatcher])
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "http://node-a.invalid:8080/whep/"+stream {
		t.Fatalf("WHEP on node B: %d Location %q, want 307 to node A", resp.StatusCode, resp.Header.Get("Location"))
	}
	// An anonymous request is refused before the registry is consulted.
	if ans, _ := b.sdpPost("/whep/"+stream, "", "v=0"); ans.status != http.StatusUnauthorized {
		t.Fatalf("anonymous WHEP on node B: %d", ans.status)
	}
}

// TestVideoAuditNeverBlocks: a full audit queue drops the report (counted
// and exported), it never blocks the media goroutine that reports it.
func TestVideoAuditNeverBlocks(t *testing.T) {
	f := newFixture(t)
	a := NewVideoAudit(f.svc, slog.New(slog.NewTextHandler(io.Discard, nil)), 2) // not running: nothing drains it
	ev := video.ViewEvent{SessionID: "s", StreamID: "camera:c1", Viewer: video.Principal{Subject: "user:viewer1", Role: "viewer"}, Start: time.Now()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			a.OnView(ev)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("OnView blocked on a full queue")
	}
	if got := a.dropped.Load(); got != 3 {
		t.Fatalf("dropped %d reports, want 3", got)
	}
	// Once running, the queued ones reach the journal (start recorded once).
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run drains what is queued and returns
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range f.videoViews() {
		if v.SessionID == "s" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d journal records for the view, want 1 start", n)
	}
}

// TestVideoPages: the wall and the WHIP/WHEP client module are served;
// the ICE server list is JSON a browser passes to RTCPeerConnection.
func TestVideoPages(t *testing.T) {
	f := newFixture(t)
	if a := f.do("GET", "/api/v1/video/ice-servers", f.tokens[auth.RoleDevice], nil); a.status != 200 || string(a.body) != "{\"ice_servers\":[]}\n" {
		t.Errorf("ice servers: %d %q", a.status, a.body)
	}
	for path, want := range map[string]string{"/wall": "./ui/video/whip.js", "/ui/video/whip.js": "export async function whep("} {
		resp, err := http.Get(f.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
}
