package video

// Benchmarks of the forwarding path. Run explicitly:
//
//	go test -run '^$' -bench . -benchtime 1x ./video
//
// The loopback benchmarks put the WHEP subscribers in a child process (this
// test binary re-executed, see TestMain) so that the server's CPU time,
// read with getrusage(RUSAGE_SELF), is the server's alone.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/kuzet/kuzet/internal/loadgen"
)

func TestMain(m *testing.M) {
	if url := os.Getenv("KUZET_VIDEO_SUBSCRIBE"); url != "" {
		runSubscriberChild(url)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// syntheticSource feeds a 720p-like H.264 stream: 2 Mbit/s, 25 fps, an IDR
// every 50 frames (60 kB, SPS/PPS in front), P frames of 9 kB, packets of
// 1100 bytes payload: about 250 packets/s.
type syntheticSource struct {
	fwd    *forwarder
	sent   atomic.Uint64
	cancel context.CancelFunc
	done   chan struct{}
}

func addSyntheticStream(s *Server, id string) *syntheticSource {
	st := &stream{id: id, kind: KindUnit, ready: make(chan struct{})}
	st.fwd = newForwarder(&s.metrics, true, false, nil, nil, nil)
	close(st.ready)
	s.mu.Lock()
	s.streams[id] = st
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	src := &syntheticSource{fwd: st.fwd, cancel: cancel, done: make(chan struct{})}
	go src.run(ctx)
	return src
}

func syntheticFrame(i int) [][]byte {
	var out [][]byte
	size, typ := 9000, byte(1)
	if i%50 == 0 {
		out = append(out, stapA([]byte{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xec}, []byte{0x68, 0xce, 0x3c, 0x80}))
		size, typ = 60000, nalIDR
	}
	nal := make([]byte, size)
	nal[0] = 0x60 | typ
	for j := 1; j < len(nal); j += 97 {
		nal[j] = byte(i + j)
	}
	return append(out, splitH264(nal, maxRTPPayload)...)
}

func (src *syntheticSource) run(ctx context.Context) {
	defer close(src.done)
	frames := make([][][]byte, 50)
	for i := range frames {
		frames[i] = syntheticFrame(i)
	}
	seq := uint16(rand.Uint32())
	tick := time.NewTicker(40 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			src.fwd.end()
			return
		case <-tick.C:
		}
		f := frames[i%50]
		for j, p := range f {
			src.fwd.write(&packet{hdr: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1, SequenceNumber: seq,
				Timestamp: uint32(i * 3600), Marker: j == len(f)-1}, payload: p, video: true})
			seq++
			src.sent.Add(1)
		}
	}
}

func (src *syntheticSource) stop() { src.cancel(); <-src.done }

func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// childResult is what the subscriber process reports.
type childResult struct {
	Viewers       int       `json:"viewers"`
	Failed        int       `json:"failed"`
	WorstLoss     float64   `json:"worst_loss"`
	MeanLoss      float64   `json:"mean_loss"`
	MinFPS        float64   `json:"min_fps"`
	JoinToKeyMs   []float64 `json:"join_to_key_ms"`
	WindowSeconds float64   `json:"window_s"`
}

// BenchmarkLoopbackViewers runs one synthetic 2 Mbit/s stream to N pion
// viewers over loopback and reports server CPU per forwarded packet,
// worst viewer loss, memory per viewer and join-to-keyframe times.
func BenchmarkLoopbackViewers(b *testing.B) {
	counts := []int{100, 300, 400}
	if s := os.Getenv("KUZET_VIDEO_VIEWERS"); s != "" {
		counts = nil
		for _, f := range strings.Split(s, ",") {
			n, _ := strconv.Atoi(f)
			counts = append(counts, n)
		}
	}
	window := 10 * time.Second
	for _, n := range counts {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				loopbackRun(b, n, window)
			}
		})
	}
}

func loopbackRun(b *testing.B, n int, window time.Duration) {
	env := newTestEnv(b, func(c *Config) { c.DisableSendBatching = os.Getenv("KUZET_VIDEO_NOBATCH") != "" })
	src := addSyntheticStream(env.srv, "unit:bench")
	defer src.stop()
	// Let the keyframe cache fill, then take the memory baseline.
	time.Sleep(2100 * time.Millisecond) // one GOP of the synthetic source
	memBase := memInUse()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KUZET_VIDEO_SUBSCRIBE="+env.http.URL+"/whep/unit:bench", "KUZET_VIDEO_N="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := bufio.NewScanner(stdout)
	if !out.Scan() || out.Text() != "READY" {
		b.Fatalf("child: %q", out.Text())
	}
	memViewers := memInUse()
	time.Sleep(2 * time.Second) // settle: joins' DTLS work done, NACK bursts over

	m := env.srv.Metrics()
	cpu0, fwd0, drop0, sent0 := loadgen.ProcessCPU(), m.PacketsForwarded.Load(), m.PacketsDropped.Load(), src.sent.Load()
	rcvErr0 := udpRcvbufErrors()
	t0 := time.Now()
	io.WriteString(stdin, "MARK\n")
	time.Sleep(window) // the measurement window
	io.WriteString(stdin, "END\n")
	cpu := loadgen.ProcessCPU() - cpu0
	rcvErr := udpRcvbufErrors() - rcvErr0
	elapsed := time.Since(t0)
	fwd, drop, sent := m.PacketsForwarded.Load()-fwd0, m.PacketsDropped.Load()-drop0, src.sent.Load()-sent0
	if !out.Scan() {
		b.Fatal("child gave no result")
	}
	var res childResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		b.Fatalf("child result %q: %v", out.Text(), err)
	}
	cmd.Wait()

	perPkt := float64(cpu.Nanoseconds()) / float64(fwd) / 1000
	slices.Sort(res.JoinToKeyMs)
	b.ReportMetric(perPkt, "µs-cpu/pkt")
	b.ReportMetric(float64(fwd)/cpu.Seconds(), "pkt/cpu-s")
	b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "cores")
	b.ReportMetric(res.WorstLoss*100, "%worst-loss")
	b.ReportMetric(res.MinFPS, "min-fps")
	b.ReportMetric(float64(memViewers-memBase)/float64(n)/1024, "KB/viewer")
	b.ReportMetric(pct(res.JoinToKeyMs, 50), "ms-join-p50")
	b.ReportMetric(pct(res.JoinToKeyMs, 95), "ms-join-p95")
	if uc := env.srv.udpConn; uc != nil {
		b.Logf("udp batches: %d sendmmsg calls, %d packets, %d errors", uc.calls.Load(), uc.sent.Load(), uc.errors.Load())
	}
	b.Logf("retransmits %d; kernel UDP receive-buffer overflows during the window (all on the subscriber side): %d", m.Retransmits.Load(), rcvErr)
	b.ReportMetric(float64(drop)/float64(fwd+drop)*100, "%server-drop")
	b.Logf("viewers=%d failed=%d source=%d pkts forwarded=%d dropped=%d cpu=%v in %v; loss worst %.3f%% mean %.3f%%; min fps %.1f",
		n, res.Failed, sent, fwd, drop, cpu.Round(time.Millisecond), elapsed.Round(time.Millisecond), res.WorstLoss*100, res.MeanLoss*100, res.MinFPS)
}

func pct(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

// BenchmarkJoinToKeyframe measures, for viewers joining one at a time a
// stream that already runs, the time from sending the WHEP offer to a
// complete keyframe at the viewer (first decodable picture).
func BenchmarkJoinToKeyframe(b *testing.B) {
	env := newTestEnv(b, nil)
	src := addSyntheticStream(env.srv, "unit:join")
	defer src.stop()
	time.Sleep(2100 * time.Millisecond) // one GOP, so the cache is full
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KUZET_VIDEO_SUBSCRIBE="+env.http.URL+"/whep/unit:join", "KUZET_VIDEO_N=200", "KUZET_VIDEO_SEQUENTIAL=1")
	cmd.Stdin = strings.NewReader("MARK\nEND\n")
	out, err := cmd.Output()
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var res childResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		b.Fatal(err)
	}
	slices.Sort(res.JoinToKeyMs)
	b.ReportMetric(pct(res.JoinToKeyMs, 50), "ms-p50")
	b.ReportMetric(pct(res.JoinToKeyMs, 95), "ms-p95")
	b.ReportMetric(res.JoinToKeyMs[len(res.JoinToKeyMs)-1], "ms-max")
	b.Logf("%d joins, failed %d", len(res.JoinToKeyMs), res.Failed)
}

// BenchmarkForwarderWrite is the fan-out alone (no SRTP, no sockets): one
// packet into 300 viewer queues that are drained by their goroutines.
func BenchmarkForwarderWrite(b *testing.B) {
	var m Metrics
	f := newForwarder(&m, true, false, nil, nil, nil)
	var wg sync.WaitGroup
	for i := 0; i < 300; i++ {
		v := newViewer(256, nil, nil)
		f.add(v)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range v.q {
			}
		}()
	}
	frames := syntheticFrame(1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.write(&packet{hdr: rtp.Header{SequenceNumber: uint16(i), Marker: i%9 == 8}, payload: frames[i%len(frames)], video: true})
	}
	b.StopTimer()
	f.end()
	wg.Wait()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/300, "ns/viewer-pkt")
}

// BenchmarkMemoryPerCamera pulls N cameras over RTSP (TCP) from one
// gortsplib server in this process and reports heap+stack per camera after
// a GOP has filled each keyframe cache and retransmission ring. The
// gortsplib server's per-session memory is counted too, so the figure is
// an upper bound.
func BenchmarkMemoryPerCamera(b *testing.B) {
	const n = 50
	env := newTestEnv(b, func(c *Config) { c.RTSPTransport = "tcp"; c.GracePeriod = time.Hour })
	cam := startRTSPCamera(b, false, 1200)
	base := memInUse()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("m%d", i)
		addCamera(b, env, id, "rtsp://"+cam.addr+"/s", nil)
		if _, _, err := env.srv.acquire(ctx, "camera:"+id, KindCamera, id); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(2500 * time.Millisecond) // a full GOP (2 s) into every cache
	for _, st := range env.srv.Streams() {
		if !st.KeyframeCached {
			b.Fatalf("%s: no keyframe cached", st.ID)
		}
	}
	b.ReportMetric(float64(memInUse()-base)/n/1024, "KB/camera")
}

// runSubscriberChild is the subscriber process: it joins N viewers (8 at a
// time, or one after another with KUZET_VIDEO_SEQUENTIAL), prints READY,
// resets its counters on MARK and prints a childResult on END.
func runSubscriberChild(url string) {
	n, _ := strconv.Atoi(os.Getenv("KUZET_VIDEO_N"))
	sequential := os.Getenv("KUZET_VIDEO_SEQUENTIAL") != ""
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.LoggerFactory = quietLoggerFactory{}
	// Subscriber sockets get 4 MB receive buffers (the sysctl maximum
	// here), like a browser's, so the test harness does not lose packets
	// while the two shared cores are busy.
	if n, err := stdnet.NewNet(); err == nil {
		se.SetNet(bigBufNet{n})
	}
	me := &webrtc.MediaEngine{}
	_ = me.RegisterDefaultCodecs()
	// No interceptors: the subscribers measure raw loss and cost the
	// shared 2 cores as little as possible (no NACK, no reports).
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(&interceptor.Registry{}), webrtc.WithSettingEngine(se))

	var mu sync.Mutex
	var subs []*childSub
	var failed atomic.Int64
	var joins []float64
	join := func() {
		cs, err := childJoin(api, url)
		if err != nil {
			fmt.Fprintln(os.Stderr, "join:", err)
			failed.Add(1)
			return
		}
		mu.Lock()
		subs = append(subs, cs)
		mu.Unlock()
		if sequential {
			select {
			case <-cs.keyAt:
				mu.Lock()
				joins = append(joins, float64(cs.keyTime.Sub(cs.posted).Microseconds())/1000)
				mu.Unlock()
			case <-time.After(10 * time.Second):
				failed.Add(1)
			}
			cs.pc.Close()
		}
	}
	if sequential {
		for i := 0; i < n; i++ {
			join()
		}
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					join()
				}
			}()
		}
		wg.Wait()
		for _, cs := range subs {
			select {
			case <-cs.keyAt:
				joins = append(joins, float64(cs.keyTime.Sub(cs.posted).Microseconds())/1000)
			case <-time.After(10 * time.Second):
				failed.Add(1)
			}
		}
	}
	fmt.Println("READY")
	in := bufio.NewScanner(os.Stdin)
	in.Scan() // MARK
	var t0 time.Time
	t0 = time.Now()
	for _, cs := range subs {
		cs.mark()
	}
	in.Scan() // END
	el := time.Since(t0).Seconds()
	res := childResult{Viewers: len(subs), Failed: int(failed.Load()), JoinToKeyMs: joins, WindowSeconds: el, MinFPS: 1e9}
	if sequential {
		res.MinFPS = 0
	}
	for _, cs := range subs {
		loss, frames := cs.result()
		res.MeanLoss += loss / float64(len(subs))
		res.WorstLoss = max(res.WorstLoss, loss)
		if !sequential {
			res.MinFPS = min(res.MinFPS, float64(frames)/el)
		}
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	for _, cs := range subs {
		cs.pc.Close()
	}
}

type bigBufNet struct{ *stdnet.Net }

func (n bigBufNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		_ = c.SetReadBuffer(4 << 20)
	}
	return c, err
}

type childSub struct {
	pc      *webrtc.PeerConnection
	posted  time.Time
	keyAt   chan struct{}
	keyTime time.Time

	mu      sync.Mutex
	marked  bool
	first   int64 // extended sequence number of the first packet after MARK
	last    int64
	seen    map[int64]struct{}
	frames  int
	extBase int64
	prev    uint16
	have    bool
}

func childJoin(api *webrtc.API, url string) (*childSub, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		return nil, err
	}
	cs := &childSub{pc: pc, keyAt: make(chan struct{})}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { go cs.read(tr) })
	cs.posted = time.Now()
	offer, _ := pc.CreateOffer(nil)
	gathered := webrtc.GatheringCompletePromise(pc)
	_ = pc.SetLocalDescription(offer)
	<-gathered
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Post(url, "application/sdp", strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		pc.Close()
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		pc.Close()
		return nil, fmt.Errorf("%d %s", resp.StatusCode, body)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		pc.Close()
		return nil, err
	}
	return cs, nil
}

func (cs *childSub) read(tr *webrtc.TrackRemote) {
	var keyBuf bool
	gotKey := false
	buf := make([]byte, 1500)
	var p rtp.Packet
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		if !gotKey {
			if i := inspectH264(p.Payload); i.idr || i.sps != nil {
				keyBuf = true
			}
			if keyBuf && p.Marker {
				gotKey = true
				cs.keyTime = time.Now()
				close(cs.keyAt)
			}
		}
		cs.mu.Lock()
		if !cs.have {
			cs.have, cs.prev = true, p.SequenceNumber
		}
		d := int64(int16(p.SequenceNumber - cs.prev))
		cs.extBase += d
		cs.prev = p.SequenceNumber
		if cs.marked {
			if cs.first == -1 {
				cs.first = cs.extBase
			}
			cs.last = max(cs.last, cs.extBase)
			cs.seen[cs.extBase] = struct{}{}
			if p.Marker {
				cs.frames++
			}
		}
		cs.mu.Unlock()
	}
}

func (cs *childSub) mark() {
	cs.mu.Lock()
	cs.marked, cs.first, cs.last, cs.seen, cs.frames = true, -1, 0, map[int64]struct{}{}, 0
	cs.mu.Unlock()
}

func (cs *childSub) result() (loss float64, frames int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.first < 0 {
		return 1, 0
	}
	expected := cs.last - cs.first + 1
	return 1 - float64(len(cs.seen))/float64(expected), cs.frames
}

// udpRcvbufErrors reads the kernel's count of UDP datagrams dropped because
// a receiving socket's buffer was full (/proc/net/snmp, Linux).
func udpRcvbufErrors() int64 {
	data, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var names, vals []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "Udp: ") {
			if names == nil {
				names = strings.Fields(l)
			} else {
				vals = strings.Fields(l)
			}
		}
	}
	for i, n := range names {
		if n == "RcvbufErrors" && i < len(vals) {
			v, _ := strconv.ParseInt(vals[i], 10, 64)
			return v
		}
	}
	return 0
}
