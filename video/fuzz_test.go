package video

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzParseOffer(f *testing.F) {
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"))
	f.Add([]byte("not sdp"))
	f.Fuzz(func(t *testing.T, b []byte) {
		oc, err := parseOffer(b)
		if err == nil && !oc.video && !oc.audio && bytes.Contains(b, []byte("m=video")) {
			t.Fatalf("video section not seen")
		}
	})
}

func FuzzParseCamerasCSV(f *testing.F) {
	f.Add(camerasCSV)
	f.Add("id,lat,lon,rtsp_url\nx,1,2,rtsp://h/\n")
	f.Add("id,lat,lon,rtsp_url\n\"unterminated,1,2,3\n")
	f.Fuzz(func(t *testing.T, s string) {
		cams, err := ParseCamerasCSV(strings.NewReader(s))
		for _, c := range cams {
			if c.Validate() != nil {
				t.Fatalf("invalid camera accepted: %v (err %v)", c, err)
			}
		}
	})
}

func FuzzParseCamerasJSON(f *testing.F) {
	f.Add(`[{"id":"j1","name":"x","lat":43.2,"lon":76.9,"heading":10,"fov":90,"rtsp_url":"rtsp://u:p@h/s","tags":["a"]}]`)
	f.Add(`[{"id":"a:b","lat":1e309}]`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, s string) {
		cams, _ := ParseCamerasJSON(strings.NewReader(s))
		for _, c := range cams {
			if c.Validate() != nil {
				t.Fatalf("invalid camera accepted: %v", c)
			}
		}
	})
}

// RTP payloads come from cameras and publishers: inspecting and
// re-fragmenting them must never panic and must respect the MTU.
func FuzzH264Payload(f *testing.F) {
	f.Add([]byte{0x65, 1, 2, 3})
	f.Add(stapA([]byte{0x67, 1}, []byte{0x68, 2}))
	f.Add(append([]byte{0x7c, 0x85}, bytes.Repeat([]byte{7}, 3000)...))
	f.Add([]byte{0x78, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		inspectH264(p)
		for _, part := range splitH264(p, maxRTPPayload) {
			if len(part) > maxRTPPayload && len(p) > maxRTPPayload {
				t.Fatalf("part of %d bytes", len(part))
			}
		}
	})
}
