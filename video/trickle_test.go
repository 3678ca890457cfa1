package video

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

func patch(t *testing.T, url, ctype, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPatch, url, strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = fmt.Fprint(&b, resp.Header.Get("ETag"))
	return resp.StatusCode, b.String()
}

// TestTrickleICE: a body-cam sends its offer without waiting for its
// candidates (none are in it) and PATCHes them to the session as they are
// gathered: the server takes them as the client's host candidates (not
// only learnt from incoming checks), the session connects, and wrong
// fragments are refused with the RFC 9725 statuses.
func TestTrickleICE(t *testing.T) {
	env := newTestEnv(t, nil)
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	track, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "bodycam")
	if _, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var cands []string
	gathered := make(chan struct{})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			close(gathered)
			return
		}
		mu.Lock()
		cands = append(cands, c.ToJSON().Candidate)
		mu.Unlock()
	})
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	// The offer as created: no candidates yet.
	if strings.Contains(offer.SDP, "a=candidate") {
		t.Fatal("test offer already has candidates")
	}
	unit := map[string]string{"X-Unit": "5", "X-Subject": "device-5"}
	res := post(t, env.http.URL+"/whip/unit:5", "application/sdp", offer.SDP, unit)
	if res.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.status, res.body)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.body}); err != nil {
		t.Fatal(err)
	}
	session := env.http.URL + res.location
	<-gathered
	ufrag, pwd := iceCredentials(offer.SDP)
	frag := func(ufrag string, lines ...string) string {
		return "a=ice-ufrag:" + ufrag + "\r\na=ice-pwd:" + pwd + "\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n" + strings.Join(lines, "\r\n") + "\r\n"
	}
	const ct = "application/trickle-ice-sdpfrag"
	// Refusals first: none of them may touch the session.
	for _, c := range []struct {
		name, ctype, body string
		hdr               map[string]string
		status            int
	}{
		{"wrong type", "application/sdp", frag(ufrag), unit, http.StatusUnsupportedMediaType},
		{"other ufrag", ct, frag("nope"), unit, http.StatusUnprocessableEntity},
		{"no ufrag", ct, "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n", unit, http.StatusBadRequest},
		{"candidate without mid", ct, "a=ice-ufrag:" + ufrag + "\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n", unit, http.StatusBadRequest},
		{"bad candidate", ct, frag(ufrag, "a=candidate:garbage"), unit, http.StatusBadRequest},
		{"ICE restart", ct, frag(ufrag), map[string]string{"If-Match": "*"}, http.StatusMethodNotAllowed},
		{"stale ETag", ct, frag(ufrag), map[string]string{"If-Match": `"other"`}, http.StatusPreconditionFailed},
	} {
		if st, _ := patch(t, session, c.ctype, c.body, c.hdr); st != c.status {
			t.Errorf("%s: %d, want %d", c.name, st, c.status)
		}
	}
	mu.Lock()
	lines := make([]string, len(cands))
	for i, c := range cands {
		lines[i] = "a=" + c
	}
	mu.Unlock()
	if len(lines) == 0 {
		t.Fatal("no local candidates gathered")
	}
	st, etag := patch(t, session, ct, frag(ufrag, append(lines, "a=end-of-candidates")...), map[string]string{"If-Match": `"` + res.location[strings.LastIndex(res.location, "/")+1:] + `"`})
	if st != http.StatusNoContent || etag == "" {
		t.Fatalf("trickle PATCH: %d (ETag %q)", st, etag)
	}
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("trickled session did not connect")
	}
	// The server knows the client's candidates as host candidates.
	env.srv.mu.Lock()
	var server *webrtc.PeerConnection
	for _, ss := range env.srv.sessions {
		server = ss.pc
	}
	env.srv.mu.Unlock()
	hosts := 0
	for _, s := range server.GetStats() {
		if c, ok := s.(webrtc.ICECandidateStats); ok && c.Type == webrtc.StatsTypeRemoteCandidate && c.CandidateType == webrtc.ICECandidateTypeHost {
			hosts++
		}
	}
	if hosts == 0 {
		t.Fatal("server has no host candidate of the client: the PATCH was not applied")
	}
}

// FuzzTrickleFragment: any PATCH body either parses to a fragment with a
// ufrag and at most 64 candidates, each with its mid, or is refused with
// ErrBadFragment; it never panics.
func FuzzTrickleFragment(f *testing.F) {
	f.Add("a=ice-ufrag:abcd\r\na=ice-pwd:secret\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n")
	f.Add("a=ice-ufrag:x\nm=audio 9 RTP/AVP 0\na=candidate:1 1 udp 1 ::1 9 typ host\n")
	f.Add("m=video 9\r\na=mid:0\r\n")
	f.Add("a=candidate:1")
	f.Fuzz(func(t *testing.T, body string) {
		fr, err := parseFragment(body)
		if err != nil {
			if !errors.Is(err, ErrBadFragment) {
				t.Fatalf("error %v is not ErrBadFragment", err)
			}
			return
		}
		if fr.ufrag == "" || len(fr.candidates) > 64 {
			t.Fatalf("accepted %+v", fr)
		}
		for _, c := range fr.candidates {
			if c.mid == "" || !strings.HasPrefix(c.line, "candidate:") {
				t.Fatalf("candidate %+v", c)
			}
		}
	})
}
