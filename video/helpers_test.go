package video

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kuzet/kuzet/video/videotest"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// clipAUs returns the access units of testdata/clip.h264 (Annex-B, one
// slice per frame, SPS/PPS before every IDR), each as Annex-B bytes.
func clipAUs(t testing.TB) [][]byte { return videotest.Clip(t, 50) }

// testEnv is a Server mounted on an httptest server the way web/ will
// mount it: the principal comes from test headers here.
type testEnv struct {
	srv   *Server
	http  *httptest.Server
	views chan ViewEvent
}

func newTestEnv(t testing.TB, mod func(*Config)) *testEnv {
	t.Helper()
	cams, err := NewCameras(context.Background(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{views: make(chan ViewEvent, 10000)}
	cfg := Config{
		Cameras:          cams,
		UDPMuxPort:       -1,
		ICEHostAddresses: []string{"127.0.0.1"},
		IncludeLoopback:  true,
		ConnectTimeout:   3 * time.Second,
		GracePeriod:      200 * time.Millisecond,
		OnView: func(ev ViewEvent) {
			select {
			case env.views <- ev:
			default:
			}
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env.srv = srv
	env.http = httptest.NewServer(env.mux())
	t.Cleanup(func() {
		env.http.Close()
		srv.Close()
	})
	return env
}

func (e *testEnv) mux() http.Handler {
	m := http.NewServeMux()
	who := func(r *http.Request) Principal {
		return Principal{Subject: r.Header.Get("X-Subject"), Role: "operator", UnitID: r.Header.Get("X-Unit")}
	}
	m.HandleFunc("POST /whip/{stream}", func(w http.ResponseWriter, r *http.Request) {
		e.srv.HandleWHIP(w, r, r.PathValue("stream"), who(r))
	})
	m.HandleFunc("POST /whep/{stream}", func(w http.ResponseWriter, r *http.Request) {
		e.srv.HandleWHEP(w, r, r.PathValue("stream"), who(r))
	})
	m.HandleFunc("/whip/{stream}/{session}", func(w http.ResponseWriter, r *http.Request) {
		e.srv.HandleSession(w, r, r.PathValue("stream"), r.PathValue("session"))
	})
	m.HandleFunc("/whep/{stream}/{session}", func(w http.ResponseWriter, r *http.Request) {
		e.srv.HandleSession(w, r, r.PathValue("stream"), r.PathValue("session"))
	})
	return m
}

// clientAPI is the pion stack of test peers: loopback only, default
// interceptors (NACK, reports) like a browser.
func clientAPI(t testing.TB) *webrtc.API {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.LoggerFactory = quietLoggerFactory{}
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

type httpResult struct {
	status   int
	body     string
	location string
}

func post(t testing.TB, url, ctype, body string, hdr map[string]string) httpResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpResult{resp.StatusCode, string(b), resp.Header.Get("Location")}
}

func del(t testing.TB, url string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// negotiate sends pc's complete offer to url and applies the answer.
func negotiate(t testing.TB, pc *webrtc.PeerConnection, url string, hdr map[string]string) (httpResult, error) {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return httpResult{}, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return httpResult{}, err
	}
	<-gathered
	res := post(t, url, "application/sdp", pc.LocalDescription().SDP, hdr)
	if res.status != http.StatusCreated {
		return res, fmt.Errorf("POST %s: %d %s", url, res.status, res.body)
	}
	return res, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.body})
}

// publisher sends the clip over WHIP in a loop at 25 fps until stopped.
type publisher struct {
	pc       *webrtc.PeerConnection
	location string
	cancel   context.CancelFunc
	done     chan struct{}
}

func startPublisher(t testing.TB, env *testEnv, unit string) *publisher {
	t.Helper()
	aus := clipAUs(t)
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
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
	res, err := negotiate(t, pc, env.http.URL+"/whip/unit:"+unit, map[string]string{"X-Unit": unit, "X-Subject": "device-" + unit})
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &publisher{pc: pc, location: res.location, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
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
	t.Cleanup(p.stop)
	return p
}

func (p *publisher) stop() {
	p.cancel()
	<-p.done
	p.pc.Close()
}

// subscriber is a WHEP viewer that depacketizes whole frames.
type subscriber struct {
	pc        *webrtc.PeerConnection
	location  string
	posted    time.Time
	frames    chan frame
	trackDone chan struct{}
	firstKey  atomic.Bool // the first packet received starts a keyframe (SPS or IDR)
	gaps      atomic.Int64
}

type frame struct {
	at       time.Time
	idr, sps bool
	size     int
}

func startSubscriber(t testing.TB, env *testEnv, stream string) (*subscriber, error) {
	t.Helper()
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	s := &subscriber{pc: pc, frames: make(chan frame, 1000), trackDone: make(chan struct{})}
	var once sync.Once
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		once.Do(func() { go s.read(tr) })
	})
	s.posted = time.Now()
	res, err := negotiate(t, pc, env.http.URL+"/whep/"+stream, map[string]string{"X-Subject": "operator-1"})
	if err != nil {
		pc.Close()
		return nil, err
	}
	s.location = res.location
	t.Cleanup(func() { pc.Close() })
	return s, nil
}

func (s *subscriber) read(tr *webrtc.TrackRemote) {
	defer close(s.trackDone)
	var dep codecs.H264Packet
	var buf []byte
	var lastSeq uint16
	have, damaged := false, false
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if !have {
			i := inspectH264(pkt.Payload)
			s.firstKey.Store(i.idr || i.sps != nil)
		}
		if have && pkt.SequenceNumber != lastSeq+1 {
			damaged = true // a gap: this frame is incomplete
			s.gaps.Add(1)
		}
		have, lastSeq = true, pkt.SequenceNumber
		nals, err := dep.Unmarshal(pkt.Payload)
		if err == nil {
			buf = append(buf, nals...)
		}
		if pkt.Marker && damaged {
			buf, damaged = nil, false
			continue
		}
		if pkt.Marker && len(buf) > 0 {
			f := frame{at: time.Now(), size: len(buf)}
			for _, n := range videotest.SplitAnnexB(buf) {
				switch n[0] & 0x1f {
				case nalIDR:
					f.idr = true
				case nalSPS:
					f.sps = true
				}
			}
			buf = nil
			select {
			case s.frames <- f:
			default:
			}
		}
	}
}

// nextFrame waits for the next depacketized frame.
func (s *subscriber) nextFrame(t testing.TB, within time.Duration) frame {
	t.Helper()
	select {
	case f := <-s.frames:
		return f
	case <-time.After(within):
		t.Fatalf("no frame within %v", within)
	}
	return frame{}
}

// settleGoroutines waits until the goroutine count drops to at most want.
func settleGoroutines(t testing.TB, want int, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond) // polling: no event reports "pion finished its goroutines"
	}
}

func decodeErr(t testing.TB, body string) httpError {
	t.Helper()
	var he httpError
	if err := json.Unmarshal([]byte(body), &he); err != nil {
		t.Fatalf("error body is not JSON {code,message}: %q", body)
	}
	return he
}
