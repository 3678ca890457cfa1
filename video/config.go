package video

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config configures a Server. The zero value of every optional field picks
// the default named in its comment; New validates the rest.
type Config struct {
	// ICEHostAddresses restricts host candidates to these local IPs (empty:
	// every non-loopback interface address pion finds).
	ICEHostAddresses []string
	// NAT1To1IPs are public addresses advertised as host candidates instead
	// of the local ones (server behind 1:1 NAT, e.g. a cloud VM).
	NAT1To1IPs []string
	// UDPMuxPort, when non-zero, makes every PeerConnection share one UDP
	// socket on this port (ICE UDP mux), so viewers do not each open sockets
	// and a firewall needs one rule. Use -1 for an ephemeral port (tests).
	UDPMuxPort int
	// DisableSendBatching makes the UDP mux send each packet with its own
	// sendto(2) instead of batching with sendmmsg(2) (see batchConn).
	DisableSendBatching bool
	// UDPPortMin/UDPPortMax bound the per-PeerConnection ports when
	// UDPMuxPort is zero. Both zero: any ephemeral port.
	UDPPortMin, UDPPortMax uint16
	// ICEServers are STUN/TURN URLs handed to pion, e.g.
	// "stun:stun.example.org:3478" or "turn:turn.example.org:3478".
	ICEServers []ICEServer
	// TURNSecret is coturn's static-auth-secret: TURN entries of ICEServers
	// without a Username get time-limited credentials from it, for this
	// server's own ICE agent and for browsers (ICEServersFor).
	TURNSecret string
	// TURNCredentialTTL is how long such a credential works (default 12 h,
	// a shift).
	TURNCredentialTTL time.Duration
	// IncludeLoopback adds loopback host candidates (tests, single-host demos).
	IncludeLoopback bool

	// AdvertiseURL is this node's base URL as other nodes reach it, e.g.
	// "http://10.0.0.5:8080". WHEP requests for a stream owned by another
	// node are redirected to owner's AdvertiseURL + "/whep/{stream}".
	AdvertiseURL string

	// Cameras is the camera registry. Required.
	Cameras *Cameras
	// Redis, when set, holds the stream registry (which node owns which
	// stream). Nil: in-memory registry for a single node.
	Redis *redis.Client
	// StreamTTL is the lifetime of a stream registry key between heartbeats
	// (default 10 s; heartbeats every StreamTTL/3).
	StreamTTL time.Duration

	// ConnectTimeout bounds the first RTSP connection for a viewer's request
	// (default 10 s).
	ConnectTimeout time.Duration
	// RTSPTransport is "tcp", "udp" or "" (automatic: UDP, then TCP).
	RTSPTransport string
	// ReconnectMin/ReconnectMax bound the exponential backoff between RTSP
	// reconnects (defaults 250 ms and 10 s).
	ReconnectMin, ReconnectMax time.Duration
	// SourceLostTimeout is how long viewers stay attached while a lost RTSP
	// source is being reconnected; after it the stream ends for them
	// (default 15 s).
	SourceLostTimeout time.Duration
	// GracePeriod keeps an RTSP pull running after its last viewer left, so
	// a viewer switching back starts at once (default 10 s).
	GracePeriod time.Duration

	// ViewerQueue is the per-viewer queue length in RTP packets (default
	// 256, about one second of a 2 Mbit/s stream). A viewer whose queue is
	// full loses packets; the others are not slowed.
	ViewerQueue int
	// MaxViewersPerStream caps viewers of one stream (default 1000).
	MaxViewersPerStream int
	// PLIInterval is the minimum time between keyframe requests sent to a
	// publisher (default 500 ms).
	PLIInterval time.Duration
	// MaxSDPBytes limits WHIP/WHEP offers (default and maximum 128 KiB).
	MaxSDPBytes int64
	// ICEDisconnectedTimeout, ICEFailedTimeout: how fast a vanished peer is
	// noticed (defaults 5 s and 10 s).
	ICEDisconnectedTimeout, ICEFailedTimeout time.Duration

	// OnView is called when a view starts and when it ends (see ViewEvent),
	// so the caller can journal it. It is called from the session's
	// goroutine and must not block for long. Nil: views are only logged.
	OnView func(ViewEvent)
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
}

// ICEServer is one STUN or TURN server.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Defaults.
const (
	DefaultMaxSDPBytes = 128 << 10
	defaultViewerQueue = 256
)

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	d := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	d(&cfg.StreamTTL, 10*time.Second)
	d(&cfg.ConnectTimeout, 10*time.Second)
	d(&cfg.ReconnectMin, 250*time.Millisecond)
	d(&cfg.ReconnectMax, 10*time.Second)
	d(&cfg.SourceLostTimeout, 15*time.Second)
	d(&cfg.GracePeriod, 10*time.Second)
	d(&cfg.PLIInterval, 500*time.Millisecond)
	d(&cfg.ICEDisconnectedTimeout, 5*time.Second)
	d(&cfg.ICEFailedTimeout, 10*time.Second)
	d(&cfg.TURNCredentialTTL, 12*time.Hour)
	if cfg.ViewerQueue == 0 {
		cfg.ViewerQueue = defaultViewerQueue
	}
	if cfg.MaxViewersPerStream == 0 {
		cfg.MaxViewersPerStream = 1000
	}
	if cfg.MaxSDPBytes == 0 {
		cfg.MaxSDPBytes = DefaultMaxSDPBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	bad := func(f string, a ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(f, a...))
	}
	if cfg.Cameras == nil {
		return bad("Cameras is required (use NewCameras)")
	}
	for _, a := range cfg.ICEHostAddresses {
		if net.ParseIP(a) == nil {
			return bad("ICEHostAddresses: %q is not an IP address", a)
		}
	}
	for _, a := range cfg.NAT1To1IPs {
		if net.ParseIP(a) == nil {
			return bad("NAT1To1IPs: %q is not an IP address", a)
		}
	}
	if cfg.UDPMuxPort < -1 || cfg.UDPMuxPort > 65535 {
		return bad("UDPMuxPort %d out of range (0 = off, -1 = ephemeral, 1..65535)", cfg.UDPMuxPort)
	}
	if cfg.UDPPortMin > cfg.UDPPortMax {
		return bad("UDPPortMin %d > UDPPortMax %d", cfg.UDPPortMin, cfg.UDPPortMax)
	}
	for _, s := range cfg.ICEServers {
		if len(s.URLs) == 0 {
			return bad("ICEServers: entry without urls")
		}
		if isTURN(s.URLs) && s.Username == "" && cfg.TURNSecret == "" {
			return bad("ICEServers: TURN server %v needs a username and credential, or TURNSecret", s.URLs)
		}
	}
	if cfg.AdvertiseURL != "" {
		u, err := url.Parse(cfg.AdvertiseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("AdvertiseURL %q must be an absolute http(s) URL", cfg.AdvertiseURL)
		}
	}
	if cfg.Redis != nil && cfg.AdvertiseURL == "" {
		return bad("AdvertiseURL is required with Redis: other nodes redirect viewers to it")
	}
	switch cfg.RTSPTransport {
	case "", "tcp", "udp":
	default:
		return bad("RTSPTransport %q: use tcp, udp or empty for automatic", cfg.RTSPTransport)
	}
	if cfg.ReconnectMin > cfg.ReconnectMax {
		return bad("ReconnectMin > ReconnectMax")
	}
	if cfg.ViewerQueue < 16 || cfg.ViewerQueue > 8192 {
		return bad("ViewerQueue %d out of range 16..8192", cfg.ViewerQueue)
	}
	if cfg.MaxSDPBytes < 1024 || cfg.MaxSDPBytes > DefaultMaxSDPBytes {
		return bad("MaxSDPBytes %d out of range 1024..%d", cfg.MaxSDPBytes, DefaultMaxSDPBytes)
	}
	if cfg.StreamTTL < time.Second {
		return bad("StreamTTL %v is below 1s", cfg.StreamTTL)
	}
	return cfg, nil
}
