package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/gis"
	"github.com/kuzet/kuzet/video"
	"github.com/kuzet/kuzet/web"
)

// VideoConfig is the video part of `kuzet serve` (see cmd/kuzet/videoflags.go).
type VideoConfig struct {
	// UDPPort is the one UDP port every WebRTC peer uses (ICE UDP mux);
	// 0 = one ephemeral port per PeerConnection.
	UDPPort int
	// HostIPs restricts ICE host candidates to these local addresses.
	HostIPs []string
	// NATIPs are public addresses advertised instead (1:1 NAT, cloud VMs).
	NATIPs []string
	// ICEServers are the STUN/TURN servers the server's ICE agent uses and
	// hands to browsers (GET /api/v1/video/ice-servers).
	ICEServers []video.ICEServer
	// TURNSecret is coturn's static-auth-secret for per-client credentials.
	TURNSecret string
	// AdvertiseURL is this node's base URL as browsers reach it; other
	// nodes redirect WHEP requests for streams living here to it. Required
	// with Redis.
	AdvertiseURL string
}

// videoPart is the video side of a node: camera registry, media server
// and the view audit queue.
type videoPart struct {
	cams  *video.Cameras
	srv   *video.Server
	audit *web.VideoAudit
}

// openVideo opens the camera registry (Redis hash with Redis storage,
// <data>/cameras.json embedded), puts every camera into the geo index and
// creates the media server whose view reports go to the audit queue.
func openVideo(ctx context.Context, cfg Config, st *Storage, svc *dispatch.Service, tracker *gis.Tracker, log *slog.Logger) (*videoPart, error) {
	cams, err := video.NewCameras(ctx, cfg.DataDir, st.Redis)
	if err != nil {
		return nil, fmt.Errorf("cameras: %w", err)
	}
	if tracker != nil {
		for _, c := range cams.List() {
			if err := tracker.SetCamera(ctx, web.GISCamera(c)); err != nil {
				log.Warn("camera not in the geo index", "camera", c.ID, "err", err)
			}
		}
	}
	audit := web.NewVideoAudit(svc, log, 0)
	v := cfg.Video
	if st.Redis != nil && v.AdvertiseURL == "" {
		v.AdvertiseURL = advertiseFromAddr(cfg.Addr)
		log.Warn("video: --video-advertise-url not set; other nodes will redirect viewers to a guessed address", "component", "video", "url", v.AdvertiseURL)
	}
	srv, err := video.New(video.Config{
		Cameras: cams, Redis: st.Redis, AdvertiseURL: v.AdvertiseURL,
		UDPMuxPort: v.UDPPort, ICEHostAddresses: v.HostIPs, NAT1To1IPs: v.NATIPs, ICEServers: v.ICEServers, TURNSecret: v.TURNSecret,
		OnView: audit.OnView, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("video: %w (check --video-udp-port, --video-host-ips, --video-nat-ips, --stun, --turn, --video-advertise-url)", err)
	}
	if a := srv.UDPAddr(); a != nil {
		log.Info("video: WebRTC media on one UDP port", "component", "video", "udp", a.String())
	}
	return &videoPart{cams: cams, srv: srv, audit: audit}, nil
}

// run starts the registry heartbeat and the audit queue; the returned stop
// closes the media server first (its Close reports the end of every open
// view), then lets the audit queue drain into the journal.
func (vp *videoPart) run(ctx context.Context, log *slog.Logger) (stop func()) {
	hctx, stopHeartbeat := context.WithCancel(ctx)
	actx, stopAudit := context.WithCancel(context.Background())
	hb, ad := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(hb)
		if err := vp.srv.Run(hctx); err != nil {
			log.Error("video stream registry stopped", "component", "video", "err", err)
		}
	}()
	go func() { defer close(ad); _ = vp.audit.Run(actx) }()
	return func() {
		stopHeartbeat()
		vp.srv.Close()
		<-hb
		stopAudit()
		<-ad
	}
}

// advertiseFromAddr guesses this node's URL from its listen address: the
// host given, else the first non-loopback IPv4 address, else loopback.
func advertiseFromAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://127.0.0.1:8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
					host = ipn.IP.String()
					break
				}
			}
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}
