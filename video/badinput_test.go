package video

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// publisherOffer is a sendonly offer from a real pion peer with the given
// video codec (and Opus audio when audio is set).
func publisherOffer(t testing.TB, mime string, audio bool) string {
	t.Helper()
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	vt, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: mime}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(vt, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	if audio {
		at, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "a", "s")
		if _, err := pc.AddTransceiverFromTrack(at, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	// Only the chosen codec in the m-line: a VP8-only camera must not
	// sneak H.264 in through the default codec list.
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if mime == webrtc.MimeTypeVP8 {
		return keepOnlyCodec(offer.SDP, "VP8")
	}
	return offer.SDP
}

// keepOnlyCodec drops rtpmap/fmtp/rtcp-fb lines of video codecs other
// than name, as a VP8-only encoder would offer.
func keepOnlyCodec(sdp, name string) string {
	var out []string
	drop := map[string]bool{}
	lines := strings.Split(sdp, "\r\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "a=rtpmap:") {
			pt, enc, _ := strings.Cut(strings.TrimPrefix(l, "a=rtpmap:"), " ")
			if !strings.HasPrefix(enc, name+"/") && !strings.HasPrefix(enc, "opus/") {
				drop[pt] = true
			}
		}
	}
	for _, l := range lines {
		skip := false
		for pt := range drop {
			for _, p := range []string{"a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"} {
				if strings.HasPrefix(l, p+pt+" ") {
					skip = true
				}
			}
		}
		if !skip {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r\n")
}

func TestBadInput(t *testing.T) {
	env := newTestEnv(t, nil)
	startPublisher(t, env, "7")
	good := publisherOffer(t, webrtc.MimeTypeH264, true)
	vp8 := publisherOffer(t, webrtc.MimeTypeVP8, false)
	huge := good + strings.Repeat("a=x-padding:"+strings.Repeat("z", 1000)+"\r\n", 140)
	unit := map[string]string{"X-Unit": "9", "X-Subject": "dev9"}

	for _, tc := range []struct {
		name, path, ctype, body string
		hdr                     map[string]string
		status                  int
		code                    string
	}{
		{"malformed SDP", "/whip/unit:9", "application/sdp", "this is not SDP", unit, 400, "bad_sdp"},
		{"SDP without media", "/whip/unit:9", "application/sdp", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", unit, 400, "bad_sdp"},
		{"oversize SDP", "/whip/unit:9", "application/sdp", huge, unit, 413, "sdp_too_large"},
		{"oversize SDP to WHEP", "/whep/unit:7", "application/sdp", huge, nil, 413, "sdp_too_large"},
		{"wrong content type", "/whip/unit:9", "application/json", good, unit, 415, "unsupported_media_type"},
		{"VP8-only WHIP", "/whip/unit:9", "application/sdp", vp8, unit, 422, "unsupported_codec"},
		{"VP8-only WHEP", "/whep/unit:7", "application/sdp", vp8, nil, 422, "unsupported_codec"},
		{"wrong unit", "/whip/unit:9", "application/sdp", good, map[string]string{"X-Unit": "8"}, 403, "forbidden"},
		{"no unit", "/whip/unit:9", "application/sdp", good, nil, 403, "forbidden"},
		{"camera over WHIP", "/whip/camera:1", "application/sdp", good, unit, 400, "bad_stream_id"},
		{"bad stream id", "/whep/bogus", "application/sdp", viewerOffer(t), nil, 400, "bad_stream_id"},
		{"unknown camera", "/whep/camera:none", "application/sdp", viewerOffer(t), nil, 404, "unknown_camera"},
		{"unit not live", "/whep/unit:5", "application/sdp", viewerOffer(t), nil, 404, "stream_not_live"},
		{"second publisher", "/whip/unit:7", "application/sdp", good, map[string]string{"X-Unit": "7"}, 409, "stream_busy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := post(t, env.http.URL+tc.path, tc.ctype, tc.body, tc.hdr)
			he := decodeErr(t, res.body)
			if res.status != tc.status || he.Code != tc.code || he.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", res.status, he, tc.status, tc.code)
			}
		})
	}

	req, _ := http.NewRequest(http.MethodPatch, env.http.URL+"/whep/unit:7/abc", strings.NewReader("a=candidate"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("PATCH of an unknown session: %d", resp.StatusCode)
	}
	if code := del(t, env.http.URL+"/whep/unit:7/no-such-session"); code != http.StatusNotFound {
		t.Fatalf("DELETE unknown session: %d", code)
	}
	// A publisher with H.264 and Opus is accepted.
	if res := post(t, env.http.URL+"/whip/unit:9", "application/sdp", good, unit); res.status != http.StatusCreated {
		t.Fatalf("H.264+Opus offer: %d %s", res.status, res.body)
	}
}
