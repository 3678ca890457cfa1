package video

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// A body-cam publishing H.264 and Opus: a viewer that offers audio gets
// both tracks; the audio follows once its video has started.
func TestWHIPAudio(t *testing.T) {
	env := newTestEnv(t, nil)
	aus := clipAUs(t)
	api := clientAPI(t)
	pub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	vt, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "bodycam")
	at, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "bodycam")
	for _, tr := range []webrtc.TrackLocal{vt, at} {
		if _, err := pub.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := negotiate(t, pub, env.http.URL+"/whip/unit:a1", map[string]string{"X-Unit": "a1"}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		opus := []byte{0xfc, 0xff, 0xfe} // an Opus TOC byte and padding: the forwarder does not decode
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_ = at.WriteSample(media.Sample{Data: opus, Duration: 20 * time.Millisecond})
			if i%2 == 0 {
				_ = vt.WriteSample(media.Sample{Data: aus[(i/2)%len(aus)], Duration: 40 * time.Millisecond})
			}
		}
	}()
	defer func() { close(stop); <-done }()

	sub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := sub.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	var audio, video atomic.Int64
	gotAudio := make(chan struct{})
	sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		go func() {
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				if tr.Kind() == webrtc.RTPCodecTypeAudio {
					if audio.Add(1) == 50 {
						close(gotAudio)
					}
					if !strings.EqualFold(tr.Codec().MimeType, webrtc.MimeTypeOpus) {
						t.Errorf("audio codec %s", tr.Codec().MimeType)
					}
				} else {
					video.Add(1)
				}
			}
		}()
	})
	if _, err := negotiate(t, sub, env.http.URL+"/whep/unit:a1", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gotAudio:
	case <-time.After(15 * time.Second):
		t.Fatalf("viewer got %d audio and %d video packets", audio.Load(), video.Load())
	}
	if video.Load() == 0 {
		t.Fatal("audio without video")
	}
}
