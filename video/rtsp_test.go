package video

import (
	"context"
	"fmt"
	"github.com/kuzet/kuzet/video/videotest"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/pion/webrtc/v4"
)

// rtspCamera is a real gortsplib RTSP server playing the test clip in a
// loop at 25 fps, as a CCTV camera would.
type rtspCamera struct {
	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	addr   string
	cancel context.CancelFunc
	done   chan struct{}

	closeOnce sync.Once
	streamMu  sync.RWMutex // held while the stream is set up, as in gortsplib's examples
	mu        sync.Mutex
	sessions  int
}

func (c *rtspCamera) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	c.streamMu.RLock()
	defer c.streamMu.RUnlock()
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

func (c *rtspCamera) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	c.streamMu.RLock()
	defer c.streamMu.RUnlock()
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

func (c *rtspCamera) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (c *rtspCamera) OnSessionOpen(*gortsplib.ServerHandlerOnSessionOpenCtx) {
	c.mu.Lock()
	c.sessions++
	c.mu.Unlock()
}

func (c *rtspCamera) OnSessionClose(*gortsplib.ServerHandlerOnSessionCloseCtx) {
	c.mu.Lock()
	c.sessions--
	c.mu.Unlock()
}

func (c *rtspCamera) openSessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions
}

// startRTSPCamera serves the clip. h265 makes it announce an H.265 track
// instead (nothing is sent), to test the refusal. payloadMax > 1100 makes
// the camera send packets larger than the WebRTC budget (gortsplib caps
// packets at 1472 bytes).
func startRTSPCamera(t testing.TB, h265 bool, payloadMax int) *rtspCamera {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return startRTSPCameraAt(t, addr, h265, payloadMax)
}

func startRTSPCameraAt(t testing.TB, addr string, h265 bool, payloadMax int) *rtspCamera {
	t.Helper()
	aus := clipAUs(t)
	udp1, udp2 := freeUDPPair(t)
	c := &rtspCamera{addr: addr, done: make(chan struct{})}
	c.srv = &gortsplib.Server{Handler: c, RTSPAddress: addr, UDPRTPAddress: udp1, UDPRTCPAddress: udp2}
	c.streamMu.Lock()
	defer c.streamMu.Unlock()
	if err := c.srv.Start(); err != nil {
		t.Fatal(err)
	}
	h264f := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	var forma format.Format = h264f
	if h265 {
		forma = &format.H265{PayloadTyp: 96}
	}
	medi := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}
	c.stream = &gortsplib.ServerStream{Server: c.srv, Desc: &description.Session{Medias: []*description.Media{medi}}}
	if err := c.stream.Initialize(); err != nil {
		t.Fatal(err)
	}
	enc := &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1, PayloadMaxSize: payloadMax}
	if err := enc.Init(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		defer close(c.done)
		if h265 {
			<-ctx.Done()
			return
		}
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			pkts, err := enc.Encode(videotest.SplitAnnexB(aus[i%len(aus)]))
			if err != nil {
				panic(err)
			}
			for _, p := range pkts {
				p.Timestamp = uint32(i * 3600)
				_ = c.stream.WritePacketRTP(medi, p)
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *rtspCamera) close() {
	c.closeOnce.Do(c.doClose)
}

func (c *rtspCamera) doClose() {
	c.cancel()
	<-c.done
	c.stream.Close()
	c.srv.Close()
}

func freeUDPPair(t testing.TB) (string, string) {
	t.Helper()
	for port := 20000 + time.Now().Nanosecond()%20000&^1; ; port += 2 {
		a, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		b, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port+1))
		if err != nil {
			a.Close()
			continue
		}
		a.Close()
		b.Close()
		return fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port+1)
	}
}

func addCamera(t testing.TB, env *testEnv, id, url string, mod func(*Camera)) {
	t.Helper()
	cam := Camera{ID: id, Name: "Test " + id, Lat: 51.128, Lon: 71.430, Heading: 90, FOV: 60, RTSPURL: url}
	if mod != nil {
		mod(&cam)
	}
	if err := env.srv.cfg.Cameras.Put(context.Background(), cam); err != nil {
		t.Fatal(err)
	}
}

func TestRTSPToWHEP(t *testing.T) {
	for _, tc := range []struct {
		transport  string
		payloadMax int
	}{
		{"tcp", 1400}, // payloads above 1100 bytes: re-fragmented for the WebRTC MTU
		{"udp", 1200},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			env := newTestEnv(t, func(c *Config) {
				c.RTSPTransport = tc.transport
				c.SourceLostTimeout = 500 * time.Millisecond
				c.ReconnectMin = 100 * time.Millisecond
			})
			cam := startRTSPCamera(t, false, tc.payloadMax)
			addCamera(t, env, "c1", "rtsp://admin:s3cret@"+cam.addr+"/stream", nil)

			sub, err := startSubscriber(t, env, "camera:c1")
			if err != nil {
				t.Fatal(err)
			}
			// The viewer's stream starts at a keyframe, and complete
			// keyframes follow (every 50 frames in the clip).
			sub.nextFrame(t, 10*time.Second)
			if !sub.firstKey.Load() {
				t.Fatal("the viewer's first packet does not start a keyframe")
			}
			idr := 0
			for i := 0; i < 60; i++ {
				if f := sub.nextFrame(t, 5*time.Second); f.idr && f.sps {
					idr++
				}
			}
			if idr == 0 {
				t.Fatal("no complete keyframe in 60 frames")
			}
			if in := env.srv.Streams()[0].PacketsIn; in == 0 {
				t.Fatal("no packets counted")
			}

			// The camera goes away: after SourceLostTimeout the track ends.
			cam.close()
			select {
			case <-sub.trackDone:
			case <-time.After(15 * time.Second):
				t.Fatal("viewer track did not end after the camera stopped")
			}
		})
	}
}

func TestRTSPGracePeriod(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.RTSPTransport = "tcp"; c.GracePeriod = 300 * time.Millisecond })
	cam := startRTSPCamera(t, false, 1200)
	addCamera(t, env, "c2", "rtsp://"+cam.addr+"/s", nil)
	sub, err := startSubscriber(t, env, "camera:c2")
	if err != nil {
		t.Fatal(err)
	}
	sub.nextFrame(t, 10*time.Second)
	if n := cam.openSessions(); n != 1 {
		t.Fatalf("camera sessions %d, want 1 (pulled once, on demand)", n)
	}
	if code := del(t, env.http.URL+sub.location); code != http.StatusOK {
		t.Fatal(code)
	}
	// The pull ends after the grace period: wait for the camera to see it.
	deadline := time.Now().Add(10 * time.Second)
	for cam.openSessions() != 0 || len(env.srv.Streams()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("pull still running: sessions=%d streams=%d", cam.openSessions(), len(env.srv.Streams()))
		}
		time.Sleep(20 * time.Millisecond) // polling the camera's session count, which has no event
	}
}

func TestCameraErrors(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.RTSPTransport = "tcp"; c.ConnectTimeout = 2 * time.Second })
	// A port nobody listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	addCamera(t, env, "dead", "rtsp://user:pw123456@"+dead+"/x", nil)
	h265 := startRTSPCamera(t, true, 1200)
	addCamera(t, env, "hevc", "rtsp://"+h265.addr+"/x", nil)
	h264 := startRTSPCamera(t, false, 1200)
	addCamera(t, env, "hevc-sub", "rtsp://"+h265.addr+"/x", func(c *Camera) { c.SubstreamURL = "rtsp://" + h264.addr + "/sub" })

	offer := viewerOffer(t)
	for _, tc := range []struct {
		stream string
		status int
		code   string
		want   string
	}{
		{"camera:dead", http.StatusBadGateway, "camera_unreachable", "camera dead"},
		{"camera:hevc", http.StatusBadGateway, "camera_codec_unsupported", "H.265"},
		{"camera:nope", http.StatusNotFound, "unknown_camera", "nope"},
	} {
		res := post(t, env.http.URL+"/whep/"+tc.stream, "application/sdp", offer, nil)
		he := decodeErr(t, res.body)
		if res.status != tc.status || he.Code != tc.code || !strings.Contains(he.Message, tc.want) {
			t.Errorf("%s: %d %+v, want %d %s containing %q", tc.stream, res.status, he, tc.status, tc.code, tc.want)
		}
		if strings.Contains(res.body, "pw123456") {
			t.Errorf("%s: error leaks the camera password: %s", tc.stream, res.body)
		}
	}
	// With an H.264 substream the H.265 camera plays.
	sub, err := startSubscriber(t, env, "camera:hevc-sub")
	if err != nil {
		t.Fatal(err)
	}
	if f := sub.nextFrame(t, 10*time.Second); !f.idr {
		t.Fatal("substream: first frame is not a keyframe")
	}
}

// viewerOffer is a recvonly H.264 offer from a real pion peer.
func viewerOffer(t testing.TB) string {
	t.Helper()
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// The camera restarts: the pull reconnects with backoff and the same viewer
// keeps receiving frames on the same track.
func TestRTSPReconnect(t *testing.T) {
	env := newTestEnv(t, func(c *Config) {
		c.RTSPTransport = "tcp"
		c.SourceLostTimeout = 10 * time.Second
		c.ReconnectMin = 50 * time.Millisecond
	})
	cam := startRTSPCamera(t, false, 1200)
	addCamera(t, env, "r1", "rtsp://"+cam.addr+"/s", nil)
	sub, err := startSubscriber(t, env, "camera:r1")
	if err != nil {
		t.Fatal(err)
	}
	sub.nextFrame(t, 10*time.Second)
	cam.close()
	startRTSPCameraAt(t, cam.addr, false, 1200)
	waitFor(t, 10*time.Second, func() bool { return env.srv.Metrics().RTSPReconnects.Load() >= 1 })
	// Drain what was queued before the loss, then frames must flow again.
	for len(sub.frames) > 0 {
		<-sub.frames
	}
	for i := 0; i < 25; i++ {
		sub.nextFrame(t, 5*time.Second)
	}
	select {
	case <-sub.trackDone:
		t.Fatal("track ended across a reconnect")
	default:
	}
}
