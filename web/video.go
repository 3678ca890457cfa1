package web

// Video in the web layer: WHIP ingest and WHEP playback routes, the camera
// registry API and an incident's video list. The media itself is the video
// package's; this file decides who may do what:
//
//   - publish (WHIP): officers and devices, only to "unit:<their unit>";
//   - watch (WHEP) and list an incident's video: call takers, dispatchers,
//     supervisors and viewers (the control-centre roles). Call takers may
//     watch because they check a caller's report against the nearest camera
//     while still on the line; every view is journalled (video_audit.go), so
//     access is reviewable. Admins manage cameras but do not watch; officers
//     publish but do not watch other streams;
//   - end a session (DELETE): the principal that opened it, or a supervisor;
//   - manage cameras: supervisors and admins.

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuzet/kuzet/gis"
	"github.com/kuzet/kuzet/internal/auth"
	"github.com/kuzet/kuzet/video"
)

// Who may watch live video (see the comment at the top of this file).
var watchers = []auth.Role{auth.RoleCallTaker, auth.RoleDispatcher, auth.RoleSupervisor, auth.RoleViewer}

// videoRoutes lists the video endpoints. It also registers the video
// metrics on the server's registry, once, when video is configured, and
// mounts the video pages.
func (s *Server) videoRoutes() []route {
	if s.cfg.Video != nil {
		s.metrics.Registry.MustRegister(newVideoCollector(s.cfg.Video.Metrics(), s.cfg.VideoAudit))
	}
	s.mountVideoUI() // video_ui.go: /wall and the WHIP/WHEP client module
	ending := roles(field, watchers, []auth.Role{auth.RoleSupervisor})
	return []route{
		{method: "POST", pattern: "/whip/{stream}", roles: field, handler: s.whip},
		{method: "DELETE", pattern: "/whip/{stream}/{session}", roles: field, handler: s.videoSession},
		{method: "PATCH", pattern: "/whip/{stream}/{session}", roles: field, handler: s.videoSession},
		{method: "POST", pattern: "/whep/{stream}", roles: watchers, handler: s.whep},
		{method: "DELETE", pattern: "/whep/{stream}/{session}", roles: ending, handler: s.videoSession},
		{method: "PATCH", pattern: "/whep/{stream}/{session}", roles: ending, handler: s.videoSession},

		{method: "GET", pattern: "/api/v1/cameras", roles: roles(watchers, management), handler: s.listCameras},
		{method: "POST", pattern: "/api/v1/cameras/import", roles: management, handler: s.importCameras},
		{method: "DELETE", pattern: "/api/v1/cameras/{id}", roles: management, handler: s.deleteCamera},
		{method: "GET", pattern: "/api/v1/incidents/{id}/video", roles: watchers, handler: s.incidentVideo},
		{method: "GET", pattern: "/api/v1/video/ice-servers", roles: roles(watchers, field), handler: s.iceServers},
	}
}

// videoPrincipal is what the video package needs to know of the caller.
func videoPrincipal(p auth.Principal) video.Principal {
	return video.Principal{Subject: p.ID(), Role: string(p.Role), UnitID: p.UnitID}
}

func (s *Server) videoServer(w http.ResponseWriter, r *http.Request) (*video.Server, bool) {
	if s.cfg.Video == nil {
		s.writeError(w, r, errorf(http.StatusServiceUnavailable, "video_disabled", "video is not configured on this server"))
		return nil, false
	}
	return s.cfg.Video, true
}

// whip accepts a body-cam or terminal publishing its unit's stream
// (RFC 9725 section 4.2).
func (s *Server) whip(w http.ResponseWriter, r *http.Request) {
	v, ok := s.videoServer(w, r)
	if !ok {
		return
	}
	p := principal(r)
	stream := r.PathValue("stream")
	if p.UnitID == "" {
		s.writeError(w, r, errorf(http.StatusForbidden, "forbidden", "%s is bound to no unit; an administrator must bind it to the unit it streams for", p.ID()))
		return
	}
	if want := "unit:" + p.UnitID; stream != want {
		s.writeError(w, r, errorf(http.StatusForbidden, "forbidden", "%s may publish only %s, not %s", p.ID(), want, stream))
		return
	}
	v.HandleWHIP(w, r, stream, videoPrincipal(p))
}

// whep answers a viewer (draft-ietf-wish-whep section 4.1); a stream owned
// by another node is answered with 307 to it.
func (s *Server) whep(w http.ResponseWriter, r *http.Request) {
	v, ok := s.videoServer(w, r)
	if !ok {
		return
	}
	v.HandleWHEP(w, r, r.PathValue("stream"), videoPrincipal(principal(r)))
}

// videoSession ends (DELETE) a WHIP or WHEP session or adds trickled ICE
// candidates to it (PATCH). Only the session's owner may do either; a
// supervisor may also end it.
func (s *Server) videoSession(w http.ResponseWriter, r *http.Request) {
	v, ok := s.videoServer(w, r)
	if !ok {
		return
	}
	stream, session := r.PathValue("stream"), r.PathValue("session")
	p := principal(r)
	owner, found := v.SessionOwner(stream, session)
	if found && owner.Subject != p.ID() && (r.Method != http.MethodDelete || p.Role != auth.RoleSupervisor) {
		s.writeError(w, r, errorf(http.StatusForbidden, "forbidden", "session %s belongs to %s; only its owner may change it (a supervisor may end it)", session, owner.Subject))
		return
	}
	v.HandleSession(w, r, stream, session)
}

// iceServers gives a browser or body-cam the STUN/TURN servers to use,
// with TURN credentials of its own that expire (video.ICEServersFor).
func (s *Server) iceServers(w http.ResponseWriter, r *http.Request) {
	v, ok := s.videoServer(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ice_servers": v.ICEServersFor(principal(r).ID(), time.Now())})
}

func (s *Server) cameraRegistry(w http.ResponseWriter, r *http.Request) (*video.Cameras, bool) {
	if s.cfg.Cameras == nil {
		s.writeError(w, r, errorf(http.StatusServiceUnavailable, "video_disabled", "the camera registry is not configured on this server"))
		return nil, false
	}
	return s.cfg.Cameras, true
}

type cameraList struct {
	Cameras []video.CameraPublic `json:"cameras"`
}

// listCameras shows every camera without its URLs or credentials.
func (s *Server) listCameras(w http.ResponseWriter, r *http.Request) {
	cams, ok := s.cameraRegistry(w, r)
	if !ok {
		return
	}
	out := cameraList{Cameras: []video.CameraPublic{}}
	for _, c := range cams.List() {
		out.Cameras = append(out.Cameras, c.Public())
	}
	writeJSON(w, http.StatusOK, out)
}

// rowError is one rejected import row.
type rowError struct {
	Row   int    `json:"row"`
	Error string `json:"error"`
}

type importResult struct {
	Imported int `json:"imported"`
}

// importCameras stores the cameras of a CSV (text/csv) or JSON
// (application/json) file: all rows or none. Bad rows are answered 422 with
// every row's error, so the file can be fixed in one go.
func (s *Server) importCameras(w http.ResponseWriter, r *http.Request) {
	cams, ok := s.cameraRegistry(w, r)
	if !ok {
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body := http.MaxBytesReader(w, r.Body, video.MaxImportBytes)
	var (
		list []video.Camera
		err  error
	)
	switch mt {
	case "text/csv":
		list, err = video.ParseCamerasCSV(body)
	case "application/json":
		list, err = video.ParseCamerasJSON(body)
	default:
		s.writeError(w, r, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the cameras as text/csv or application/json, not %q", r.Header.Get("Content-Type")))
		return
	}
	var ie *video.ImportError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ie):
		rows := make([]rowError, len(ie.Rows))
		for i, re := range ie.Rows {
			rows[i] = rowError{Row: re.Row, Error: re.Err.Error()}
		}
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"code":    "invalid_rows",
			"message": fmt.Sprintf("%d rows are invalid; nothing was imported. Fix the rows listed and send the whole file again", len(rows)),
			"rows":    rows,
		})
		return
	case errors.As(err, &mbe), errors.Is(err, video.ErrImportTooLarge):
		s.writeError(w, r, errorf(http.StatusRequestEntityTooLarge, "body_too_large", "camera import is larger than %d bytes; split the file", video.MaxImportBytes))
		return
	case err != nil:
		s.writeError(w, r, errorf(http.StatusUnprocessableEntity, "invalid", "%v", err))
		return
	case len(list) == 0:
		s.writeError(w, r, errorf(http.StatusUnprocessableEntity, "invalid", "the file holds no cameras"))
		return
	}
	if err := cams.Put(r.Context(), list...); err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, c := range list {
		s.indexCamera(r.Context(), c)
	}
	writeJSON(w, http.StatusOK, importResult{Imported: len(list)})
}

// indexCamera puts a camera into the geo index; the registry is the record,
// so a failure here is logged and repaired by the next start.
func (s *Server) indexCamera(ctx context.Context, c video.Camera) {
	if s.cfg.Tracker == nil {
		return
	}
	if err := s.cfg.Tracker.SetCamera(ctx, GISCamera(c)); err != nil {
		s.log.Warn("camera not in the geo index", "camera", c.ID, "err", err)
	}
}

// GISCamera is what the geo index keeps of a camera (no URLs).
func GISCamera(c video.Camera) gis.Camera {
	return gis.Camera{ID: c.ID, Lat: c.Lat, Lon: c.Lon, Heading: c.Heading, FOV: c.FOV, Name: c.Name}
}

func (s *Server) deleteCamera(w http.ResponseWriter, r *http.Request) {
	cams, ok := s.cameraRegistry(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if _, ok := cams.Get(id); !ok {
		s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "no camera %q; GET /api/v1/cameras lists them", id))
		return
	}
	if err := cams.Delete(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.Tracker != nil {
		if err := s.cfg.Tracker.RemoveCamera(r.Context(), id); err != nil {
			s.log.Warn("camera still in the geo index", "camera", id, "err", err)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// bodyCam is a live body-cam of a unit assigned to the incident.
type bodyCam struct {
	UnitID   string `json:"unit_id"`
	CallSign string `json:"call_sign,omitempty"`
	StreamID string `json:"stream"`
}

// nearCamera is a camera near the incident with its distance.
type nearCamera struct {
	video.CameraPublic
	Distance float64 `json:"distance_m"`
}

type incidentVideo struct {
	IncidentID string       `json:"incident_id"`
	BodyCams   []bodyCam    `json:"bodycams"`
	Cameras    []nearCamera `json:"cameras"`
}

// Defaults and limits of the incident video list.
const (
	defaultCameraRadius = 1000.0 // metres
	maxCameraRadius     = 20000.0
	defaultCameraLimit  = 8
	maxCameraLimit      = 50
)

// incidentVideo lists what a control room can watch for an incident: the
// live body-cams of the units assigned to it now, then the cameras nearest
// to its location from the geo index (?radius= metres, ?limit=).
func (s *Server) incidentVideo(w http.ResponseWriter, r *http.Request) {
	v, ok := s.videoServer(w, r)
	if !ok {
		return
	}
	in, err := s.svc.Incident(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	radius, limit := defaultCameraRadius, defaultCameraLimit
	q := r.URL.Query()
	if x := q.Get("radius"); x != "" {
		f, err := strconv.ParseFloat(x, 64)
		if err != nil || !(f > 0 && f <= maxCameraRadius) {
			s.writeError(w, r, errorf(http.StatusBadRequest, "bad_radius", "radius must be metres in (0, %v]", maxCameraRadius))
			return
		}
		radius = f
	}
	if x := q.Get("limit"); x != "" {
		n, err := strconv.Atoi(x)
		if err != nil || n < 1 || n > maxCameraLimit {
			s.writeError(w, r, errorf(http.StatusBadRequest, "bad_limit", "limit must be 1..%d", maxCameraLimit))
			return
		}
		limit = n
	}
	out := incidentVideo{IncidentID: in.ID, BodyCams: []bodyCam{}, Cameras: []nearCamera{}}
	for _, a := range in.Assignments {
		if a.ClearedAt != nil {
			continue
		}
		id := "unit:" + a.UnitID
		live, err := v.LiveAnywhere(r.Context(), id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !live {
			continue
		}
		bc := bodyCam{UnitID: a.UnitID, StreamID: id}
		if u, err := s.svc.Unit(a.UnitID); err == nil {
			bc.CallSign = u.CallSign
		}
		out.BodyCams = append(out.BodyCams, bc)
	}
	if s.cfg.Cameras != nil {
		if out.Cameras, err = s.nearestCameras(gis.Point{Lat: in.Location.Lat, Lon: in.Location.Lon}, radius, limit); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// nearestCameras asks the geo index (the same R-tree as units) when the
// tracker is wired, and otherwise measures the distance to every camera in
// the registry.
func (s *Server) nearestCameras(p gis.Point, radius float64, limit int) ([]nearCamera, error) {
	out := []nearCamera{}
	if s.cfg.Tracker != nil {
		hits, err := s.cfg.Tracker.CamerasNear(p, radius, limit)
		if err != nil {
			return nil, errorf(http.StatusUnprocessableEntity, "invalid", "%v", err)
		}
		for _, h := range hits {
			if c, ok := s.cfg.Cameras.Get(h.ID); ok { // the registry is the record; the index may lag
				out = append(out, nearCamera{CameraPublic: c.Public(), Distance: h.Distance})
			}
		}
		return out, nil
	}
	for _, c := range s.cfg.Cameras.List() {
		if d := gis.Distance(p, gis.Point{Lat: c.Lat, Lon: c.Lon}); d <= radius {
			out = append(out, nearCamera{CameraPublic: c.Public(), Distance: d})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Distance < out[j].Distance })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// videoCollector exports video.Metrics (atomic counters kept by the media
// path) as Prometheus metrics when scraped, so the media path does no
// Prometheus work per packet.
type videoCollector struct {
	m     *video.Metrics
	audit *VideoAudit
	descs []*prometheus.Desc
}

var videoMetricDefs = []struct {
	name, help string
	counter    bool
	get        func(m *video.Metrics) float64
}{
	{"kuzet_video_packets_in_total", "RTP packets received from video sources (cameras, body-cams).", true, func(m *video.Metrics) float64 { return float64(m.PacketsIn.Load()) }},
	{"kuzet_video_packets_forwarded_total", "RTP packets queued to viewers (one per viewer).", true, func(m *video.Metrics) float64 { return float64(m.PacketsForwarded.Load()) }},
	{"kuzet_video_packets_dropped_total", "RTP packets dropped because a viewer's queue was full (slow viewer).", true, func(m *video.Metrics) float64 { return float64(m.PacketsDropped.Load()) }},
	{"kuzet_video_retransmits_total", "Packets resent to viewers from the shared ring after a NACK.", true, func(m *video.Metrics) float64 { return float64(m.Retransmits.Load()) }},
	{"kuzet_video_keyframe_requests_total", "Keyframe requests (PLI) sent to WHIP publishers.", true, func(m *video.Metrics) float64 { return float64(m.KeyframeRequests.Load()) }},
	{"kuzet_video_rtsp_reconnects_total", "RTSP camera reconnects.", true, func(m *video.Metrics) float64 { return float64(m.RTSPReconnects.Load()) }},
	{"kuzet_video_rtsp_packets_lost_total", "Packets missing in cameras' RTP sequence numbers.", true, func(m *video.Metrics) float64 { return float64(m.RTSPPacketsLost.Load()) }},
	{"kuzet_video_trickle_fragments_total", "Trickle ICE PATCHes accepted on WHIP/WHEP sessions.", true, func(m *video.Metrics) float64 { return float64(m.TrickleFragments.Load()) }},
	{"kuzet_video_viewers", "Viewers attached to streams on this node.", false, func(m *video.Metrics) float64 { return float64(m.Viewers.Load()) }},
	{"kuzet_video_publishers", "WHIP publishers connected to this node.", false, func(m *video.Metrics) float64 { return float64(m.Publishers.Load()) }},
	{"kuzet_video_streams", "Live streams on this node.", false, func(m *video.Metrics) float64 { return float64(m.Streams.Load()) }},
	{"kuzet_video_peer_connections", "Open WebRTC PeerConnections (viewers and publishers).", false, func(m *video.Metrics) float64 { return float64(m.PeerConnections.Load()) }},
}

func newVideoCollector(m *video.Metrics, audit *VideoAudit) *videoCollector {
	c := &videoCollector{m: m, audit: audit}
	for _, d := range videoMetricDefs {
		c.descs = append(c.descs, prometheus.NewDesc(d.name, d.help, nil, nil))
	}
	c.descs = append(c.descs,
		prometheus.NewDesc("kuzet_video_audit_dropped_total", "View audit events dropped because the audit queue was full (each is also logged).", nil, nil),
		prometheus.NewDesc("kuzet_video_audit_failed_total", "View audit events the journal refused after retries (each is also logged).", nil, nil))
	return c
}

func (c *videoCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *videoCollector) Collect(ch chan<- prometheus.Metric) {
	for i, d := range videoMetricDefs {
		t := prometheus.GaugeValue
		if d.counter {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[i], t, d.get(c.m))
	}
	var dropped, failed float64
	if c.audit != nil {
		dropped, failed = float64(c.audit.dropped.Load()), float64(c.audit.failed.Load())
	}
	n := len(videoMetricDefs)
	ch <- prometheus.MustNewConstMetric(c.descs[n], prometheus.CounterValue, dropped)
	ch <- prometheus.MustNewConstMetric(c.descs[n+1], prometheus.CounterValue, failed)
}
