// Package web is Kuzet's HTTP face: the REST API under /api/v1, the
// WebSocket event stream, the ingest endpoints and the browser screens.
//
// A request goes through one route table (routes.go). Each route names the
// roles allowed to call it; the wrapper authenticates the bearer token,
// checks the role, and only then calls the handler, which decodes the body
// strictly, calls the dispatch service and answers with JSON. Errors are
// {code, message}. The same table drives the OpenAPI conformance test and
// the role matrix test, so a route cannot be added without both.
//
// Events reach browsers through the Hub (hub.go): the dispatch service tells
// it about every applied journal record; the hub encodes each once and
// queues it to every client allowed to see it, cutting off a client that
// falls behind; the client reconnects with the last sequence number it saw
// and gets exactly the events it missed.
package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/gis"
	"github.com/kuzet/kuzet/internal/auth"
	"github.com/kuzet/kuzet/video"
)

// Config configures the web layer.
type Config struct {
	Dispatch *dispatch.Service
	Auth     *auth.Authenticator
	Logger   *slog.Logger
	Metrics  *Metrics
	// AllowedOrigins are extra origins (scheme://host:port) allowed to open
	// the WebSocket besides the server's own host.
	AllowedOrigins []string
	// Ready reports extra readiness conditions (storage reachable).
	Ready func(ctx context.Context) error
	// ClientQueue bounds each WebSocket client's queue; default 1 MiB.
	ClientQueue int
	// WriteTimeout cuts off a WebSocket client that does not read; default 10 s.
	WriteTimeout time.Duration
	// Intake configures the PBX, AML, citizen report and chat-bot doors
	// (intake.go).
	Intake IntakeConfig
	// Tracker is live tracking (gis.go); nil disables the gis endpoints.
	Tracker *gis.Tracker
	GIS     GISConfig
	// Video serves WHIP/WHEP (video.go); nil answers 503 on those routes.
	Video *video.Server
	// Cameras is the camera registry behind /api/v1/cameras.
	Cameras *video.Cameras
	// VideoAudit journals views; its queue is video.Config.OnView.
	VideoAudit *VideoAudit
}

// Server holds the HTTP handlers.
type Server struct {
	cfg     Config
	svc     *dispatch.Service
	auth    *auth.Authenticator
	log     *slog.Logger
	metrics *Metrics
	hub     *Hub
	mux     *http.ServeMux
	routes  []route
	origins map[string]bool

	draining atomic.Bool
	gis      *gisArea // nil without Config.Tracker

	in *intakeState // intake.go
}

// New builds the server and registers its hub with the dispatch service.
// Call before the service starts.
func New(cfg Config) (*Server, error) {
	if cfg.Dispatch == nil || cfg.Auth == nil {
		return nil, errors.New("web: dispatch service and authenticator are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.ClientQueue <= 0 {
		cfg.ClientQueue = 1 << 20
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	s := &Server{
		cfg:     cfg,
		svc:     cfg.Dispatch,
		auth:    cfg.Auth,
		log:     cfg.Logger.With("component", "web"),
		metrics: cfg.Metrics,
		mux:     http.NewServeMux(),
		origins: map[string]bool{},
	}
	for _, o := range cfg.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("web: allowed origin %q must look like https://host:port", o)
		}
		s.origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	s.hub = newHub(s)
	var err error
	if s.in, err = newIntakeState(cfg.Intake, cfg.Logger); err != nil {
		return nil, err
	}
	s.svc.OnApplied(s.hub.publish)
	s.svc.OnApplied(func(r journalRecord, _ *dispatch.State) { s.metrics.eventsApplied.Inc() })
	s.svc.OnApplied(s.amlForNewCall)
	// Each area of the system adds its routes from its own file; every
	// route goes through the same role check, metrics and matrix test.
	s.routes = s.apiRoutes()
	s.routes = append(s.routes, s.gisRoutes()...)    // gis.go: positions, sectors, recommendation
	s.routes = append(s.routes, s.intakeRoutes()...) // intake.go: CTI, AML, reports, chat-bot
	s.routes = append(s.routes, s.videoRoutes()...)  // video.go: WHIP, WHEP, cameras
	for _, rt := range s.routes {
		s.mux.Handle(rt.method+" "+rt.pattern, s.wrap(rt))
	}
	s.mux.HandleFunc("GET /report/status/{token}", s.reportStatusPage) // the citizen's status link
	s.mux.HandleFunc("GET /report", serveReportPage)                   // the citizen's report form
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", s.metrics.Handler())
	s.mux.HandleFunc("GET /api/v1/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		_, _ = w.Write(openAPI)
	})
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errorf(http.StatusNotFound, "no_such_endpoint", "%s %s is not an endpoint; see /api/v1/openapi.yaml", r.Method, r.URL.Path))
	})
	return s, nil
}

// Handler is the root HTTP handler.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		s.mux.ServeHTTP(w, r)
	})
}

// Mux lets other parts of the system (ingest, video, UI) mount handlers.
func (s *Server) Mux() *http.ServeMux { return s.mux }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	var problems []string
	if s.draining.Load() {
		problems = append(problems, "shutting down")
	}
	if err := s.svc.Ready(); err != nil {
		problems = append(problems, err.Error())
	}
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "problems": problems})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "applied": s.svc.Applied()})
}

// Drain marks the server as shutting down (readyz fails, so a load balancer
// stops sending) and closes every WebSocket with "going away", waiting at
// most until ctx ends for their writers to finish.
func (s *Server) Drain(ctx context.Context) {
	s.draining.Store(true)
	s.hub.close(ctx)
	s.drainGIS(ctx) // positions sockets (positions.go)
}

// principalKey carries the authenticated principal in the request context.
type principalKey struct{}

func principal(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(principalKey{}).(auth.Principal)
	return p
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(tok)
	}
	return ""
}

// authenticate resolves the bearer token; it answers 401 itself on failure.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (auth.Principal, bool) {
	tok := bearer(r)
	if tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kuzet"`)
		s.writeError(w, r, errorf(http.StatusUnauthorized, "unauthenticated", "sign in with POST /api/v1/sessions and send Authorization: Bearer <token>"))
		return auth.Principal{}, false
	}
	p, err := s.auth.Resolve(r.Context(), tok)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kuzet", error="invalid_token"`)
		if errors.Is(err, auth.ErrBadToken) || errors.Is(err, auth.ErrExpired) {
			s.writeError(w, r, errorf(http.StatusUnauthorized, "invalid_token", "%v", err))
		} else {
			s.writeError(w, r, err)
		}
		return auth.Principal{}, false
	}
	return p, true
}

// wrap applies authentication, the role check, metrics and logging.
func (s *Server) wrap(rt route) http.Handler {
	allowed := map[auth.Role]bool{}
	for _, ro := range rt.roles {
		allowed[ro] = true
	}
	obs := s.metrics.requestDuration.MustCurryWith(map[string]string{"route": rt.method + " " + rt.pattern})
	// Each status's histogram is looked up once (on first use, so /metrics
	// lists only statuses that happened), not per request.
	var byStatus sync.Map // int → prometheus.Observer
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			o, ok := byStatus.Load(sw.status)
			if !ok {
				o, _ = byStatus.LoadOrStore(sw.status, obs.WithLabelValues(strconv.Itoa(sw.status)))
			}
			o.(prometheus.Observer).Observe(time.Since(start).Seconds())
		}()
		if !rt.public {
			p, ok := s.authenticate(sw, r)
			if !ok {
				return
			}
			if !allowed[p.Role] {
				s.writeError(sw, r, errorf(http.StatusForbidden, "role_forbidden", "role %s may not call %s %s", p.Role, r.Method, rt.pattern))
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		}
		rt.handler(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController and the WebSocket upgrader reach the
// connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack lets the WebSocket upgrader take over the connection.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}
