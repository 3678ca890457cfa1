package video

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// h264Fmtps are the H.264 variants offered to and accepted from browsers.
// The forwarder does not decode, so any profile the source sends is
// forwarded; level-asymmetry-allowed lets the browser decode above its
// offered level.
var h264Fmtps = []string{
	"level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	"level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
	"level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f",
	"level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032",
}

// newMediaEngine registers H.264 and Opus. Publishers get RTX (RFC 4588)
// for their retransmissions; viewers get plain NACK retransmission from the
// stream's shared ring, which needs no extra SSRC per viewer.
func newMediaEngine(rtx bool) (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	pt := webrtc.PayloadType(102)
	for _, f := range h264Fmtps {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: f, RTCPFeedback: fb},
			PayloadType:        pt,
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
		if rtx {
			if err := m.RegisterCodec(webrtc.RTPCodecParameters{
				RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", pt)},
				PayloadType:        pt + 1,
			}, webrtc.RTPCodecTypeVideo); err != nil {
				return nil, err
			}
		}
		pt += 2
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	return m, nil
}

// newAPIs builds the two pion APIs sharing one SettingEngine (and so one
// UDP mux): publishers with NACK generation and receiver reports, viewers
// with an empty interceptor registry. The viewer side needs no per-viewer
// NACK responder buffer (pion's default keeps one per PeerConnection, the
// main memory cost per viewer in other servers): viewers' NACKs are answered
// from the forwarder's shared ring.
func (s *Server) newAPIs() error {
	se := webrtc.SettingEngine{}
	se.LoggerFactory = quietLoggerFactory{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(s.cfg.ICEDisconnectedTimeout, s.cfg.ICEFailedTimeout, 0)
	se.SetIncludeLoopbackCandidate(s.cfg.IncludeLoopback)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if len(s.cfg.ICEHostAddresses) > 0 {
		allowed := s.cfg.ICEHostAddresses
		se.SetIPFilter(func(ip net.IP) bool {
			return slices.ContainsFunc(allowed, func(a string) bool { return net.ParseIP(a).Equal(ip) })
		})
	}
	if len(s.cfg.NAT1To1IPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: s.cfg.NAT1To1IPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return fmt.Errorf("%w: NAT1To1IPs: %v", ErrInvalidConfig, err)
		}
	}
	switch {
	case s.cfg.UDPMuxPort != 0:
		port := max(s.cfg.UDPMuxPort, 0)
		ip := net.IPv4zero
		if len(s.cfg.ICEHostAddresses) == 1 {
			ip = net.ParseIP(s.cfg.ICEHostAddresses[0])
		}
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			return fmt.Errorf("video: listen on UDP mux port %d: %w", port, err)
		}
		_ = conn.SetReadBuffer(4 << 20)
		_ = conn.SetWriteBuffer(4 << 20)
		s.udpConn = newBatchConn(conn, !s.cfg.DisableSendBatching)
		s.udpMux = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: s.udpConn, Logger: quietLoggerFactory{}.NewLogger("ice")})
		se.SetICEUDPMux(s.udpMux)
	case s.cfg.UDPPortMax != 0:
		if err := se.SetEphemeralUDPPortRange(s.cfg.UDPPortMin, s.cfg.UDPPortMax); err != nil {
			return fmt.Errorf("%w: UDP port range: %v", ErrInvalidConfig, err)
		}
	}

	pubME, err := newMediaEngine(true)
	if err != nil {
		return err
	}
	pubIR := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(pubME, pubIR); err != nil {
		return err
	}
	if err := webrtc.ConfigureRTCPReports(pubIR); err != nil {
		return err
	}
	s.pubAPI = webrtc.NewAPI(webrtc.WithMediaEngine(pubME), webrtc.WithInterceptorRegistry(pubIR), webrtc.WithSettingEngine(se))

	viewME, err := newMediaEngine(false)
	if err != nil {
		return err
	}
	s.viewAPI = webrtc.NewAPI(webrtc.WithMediaEngine(viewME), webrtc.WithInterceptorRegistry(&interceptor.Registry{}), webrtc.WithSettingEngine(se))
	return nil
}

func (s *Server) pcConfig() webrtc.Configuration {
	c := webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle}
	for _, is := range s.ICEServersFor("kuzet-server", time.Now()) {
		c.ICEServers = append(c.ICEServers, webrtc.ICEServer{URLs: is.URLs, Username: is.Username, Credential: is.Credential})
	}
	return c
}

// offerCodecs lists what an SDP offer carries: whether it has video and
// audio sections and whether they include H.264 and Opus.
type offerCodecs struct {
	video, h264, audio, opus bool
}

// parseOffer checks an SDP offer (RFC 8866) before pion sees it, so a bad
// offer gets a precise message.
func parseOffer(body []byte) (offerCodecs, error) {
	var oc offerCodecs
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(body)); err != nil {
		return oc, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return oc, fmt.Errorf("%w: no m= section", ErrBadSDP)
	}
	for _, md := range sd.MediaDescriptions {
		var names []string
		for _, a := range md.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			_, enc, ok := strings.Cut(a.Value, " ")
			if !ok {
				return oc, fmt.Errorf("%w: bad a=rtpmap:%s", ErrBadSDP, a.Value)
			}
			name, _, _ := strings.Cut(enc, "/")
			names = append(names, strings.ToUpper(name))
		}
		switch md.MediaName.Media {
		case "video":
			oc.video = true
			oc.h264 = oc.h264 || slices.Contains(names, "H264")
		case "audio":
			oc.audio = true
			oc.opus = oc.opus || slices.Contains(names, "OPUS")
		}
	}
	return oc, nil
}

// quietLoggerFactory drops pion's internal logs below error; this package
// logs what matters with slog.
type quietLoggerFactory struct{}

func (quietLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	l := logging.NewDefaultLeveledLoggerForScope(scope, logging.LogLevelError, discard{})
	return l
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
