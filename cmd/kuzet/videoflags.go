package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/kuzet/kuzet/internal/node"
	"github.com/kuzet/kuzet/video"
)

// videoFlags declares the video flags of `kuzet serve`; the returned
// function reads them after parsing.
func videoFlags(f *flags) func() (node.VideoConfig, error) {
	udp := f.str("video-udp-port", "KUZET_VIDEO_UDP_PORT", "0", "UDP port for all WebRTC media, e.g. 8189: WHIP publishers and WHEP viewers share it, so the firewall needs one rule, and sends are batched (recommended in production); 0 = a random port per connection")
	hosts := f.str("video-host-ips", "KUZET_VIDEO_HOST_IPS", "", "comma-separated local IPs offered to browsers as ICE host candidates (default: every non-loopback address)")
	nat := f.str("video-nat-ips", "KUZET_VIDEO_NAT_IPS", "", "comma-separated public IPs to advertise instead of the local ones when the server is behind 1:1 NAT (cloud VM)")
	stun := f.str("stun", "KUZET_STUN", "", "comma-separated STUN servers, e.g. stun:stun.example.kz:3478")
	turn := f.str("turn", "KUZET_TURN", "", "comma-separated TURN servers, e.g. turn:turn.example.kz:3478?transport=udp,turns:turn.example.kz:5349 (see deploy/turn/)")
	turnUser := f.str("turn-username", "KUZET_TURN_USERNAME", "", "TURN username (lt-cred-mech user of deploy/turn/turnserver.conf)")
	turnPass := f.str("turn-credential", "KUZET_TURN_CREDENTIAL", "", "TURN password; prefer the environment variable (a flag shows in the process list)")
	turnSecret := f.str("turn-secret", "KUZET_TURN_SECRET", "", "coturn static-auth-secret (use-auth-secret): instead of --turn-username/--turn-credential, every browser and body-cam gets its own TURN credential valid 12 h from GET /api/v1/video/ice-servers; prefer the environment variable")
	adv := f.str("video-advertise-url", "KUZET_VIDEO_ADVERTISE_URL", "", "this node's base URL as browsers and the other nodes reach it, e.g. http://10.0.0.5:8080; with --redis, WHEP requests for streams on this node are redirected here and other nodes fetch citizen files held here (default: guessed from --addr)")
	return func() (node.VideoConfig, error) {
		var c node.VideoConfig
		port, err := strconv.Atoi(strings.TrimSpace(*udp))
		if err != nil || port < 0 || port > 65535 {
			return c, fmt.Errorf("--video-udp-port %q must be a port number 1..65535, or 0", *udp)
		}
		c.UDPPort = port
		if c.HostIPs, err = ipList("--video-host-ips", *hosts); err != nil {
			return c, err
		}
		if c.NATIPs, err = ipList("--video-nat-ips", *nat); err != nil {
			return c, err
		}
		for _, u := range list(*stun) {
			if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "stuns:") {
				return c, fmt.Errorf("--stun %q must start with stun: or stuns:", u)
			}
			c.ICEServers = append(c.ICEServers, video.ICEServer{URLs: []string{u}})
		}
		if turns := list(*turn); len(turns) > 0 {
			for _, u := range turns {
				if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
					return c, fmt.Errorf("--turn %q must start with turn: or turns:", u)
				}
			}
			switch {
			case *turnSecret != "":
				c.TURNSecret = *turnSecret
				c.ICEServers = append(c.ICEServers, video.ICEServer{URLs: turns})
			case *turnUser == "" || *turnPass == "":
				return c, fmt.Errorf("--turn needs --turn-secret (KUZET_TURN_SECRET), or --turn-username and --turn-credential (KUZET_TURN_CREDENTIAL)")
			default:
				c.ICEServers = append(c.ICEServers, video.ICEServer{URLs: turns, Username: *turnUser, Credential: *turnPass})
			}
		}
		c.AdvertiseURL = strings.TrimRight(strings.TrimSpace(*adv), "/")
		return c, nil
	}
}

func list(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func ipList(flag, s string) ([]string, error) {
	out := list(s)
	for _, x := range out {
		if net.ParseIP(x) == nil {
			return nil, fmt.Errorf("%s: %q is not an IP address", flag, x)
		}
	}
	return out, nil
}
