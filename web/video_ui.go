package web

import (
	"embed"
	"io/fs"
	"net/http"
)

// videoUI holds the video browser code: the WHIP/WHEP client module shared
// by the screens (ui/video/whip.js) and the minimal video wall.
//
//go:embed ui/video
var videoUI embed.FS

// mountVideoUI serves /wall and /ui/video/. The pages carry no data; they
// authenticate their API calls with the bearer token themselves.
func (s *Server) mountVideoUI() {
	sub, _ := fs.Sub(videoUI, "ui/video")
	files := http.FileServerFS(sub)
	s.mux.Handle("GET /ui/video/", http.StripPrefix("/ui/video/", noStore(files)))
	s.mux.HandleFunc("GET /wall", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; media-src 'self' blob:; style-src 'unsafe-inline'")
		http.ServeFileFS(w, r, sub, "wall.html")
	})
}

// reportUI is the citizens' report page.
//
//go:embed ui/report/report.html
var reportPage []byte

// serveReportPage serves GET /report: public, no data in it; it posts to
// the public, rate-limited POST /api/v1/reports.
func serveReportPage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' blob:")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(reportPage)
}

// noStore keeps browsers from running an old client after an upgrade.
func noStore(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
