package video

import (
	"net/http"
	"testing"
	"time"
)

func TestWHIPToWHEP(t *testing.T) {
	env := newTestEnv(t, nil)
	pub := startPublisher(t, env, "42")

	sub, err := startSubscriber(t, env, "unit:42")
	if err != nil {
		t.Fatal(err)
	}
	first := sub.nextFrame(t, 10*time.Second)
	if !first.idr || !first.sps {
		t.Fatalf("first frame: idr=%v sps=%v, want a keyframe with SPS", first.idr, first.sps)
	}
	for i := 0; i < 50; i++ {
		sub.nextFrame(t, 5*time.Second)
	}

	// By now the forwarder has cached a keyframe. A late viewer gets it at
	// once instead of waiting for the next one (every 2 s in the clip).
	if !env.srv.Streams()[0].KeyframeCached {
		t.Fatal("no keyframe cached after 50 frames")
	}
	late, err := startSubscriber(t, env, "unit:42")
	if err != nil {
		t.Fatal(err)
	}
	lf := late.nextFrame(t, 10*time.Second)
	if !lf.idr || !lf.sps {
		t.Fatalf("late viewer's first frame: idr=%v sps=%v", lf.idr, lf.sps)
	}
	t.Logf("late viewer: POST to first decodable keyframe %v", lf.at.Sub(late.posted))
	// Each join asked the publisher for a keyframe (PLI), at most one per
	// PLIInterval.
	if n := env.srv.Metrics().KeyframeRequests.Load(); n < 1 || n > 2 {
		t.Fatalf("%d keyframe requests for 2 joins", n)
	}
	for i := 0; i < 25; i++ {
		late.nextFrame(t, 5*time.Second)
	}

	// Views are audited: two starts so far.
	for i := 0; i < 2; i++ {
		select {
		case ev := <-env.views:
			if ev.StreamID != "unit:42" || ev.Viewer.Subject != "operator-1" || !ev.End.IsZero() || ev.Remote == "" {
				t.Fatalf("start event %+v", ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no view start event")
		}
	}
	if code := del(t, env.http.URL+late.location); code != http.StatusOK {
		t.Fatalf("DELETE viewer: %d", code)
	}
	select {
	case ev := <-env.views:
		if ev.End.IsZero() || ev.Reason != "delete" {
			t.Fatalf("end event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no view end event")
	}

	// The publisher leaves: the first viewer's track ends.
	if code := del(t, env.http.URL+pub.location); code != http.StatusOK {
		t.Fatalf("DELETE publisher: %d", code)
	}
	select {
	case <-sub.trackDone:
	case <-time.After(15 * time.Second):
		t.Fatal("viewer track did not end after the publisher left")
	}
	res := post(t, env.http.URL+"/whep/unit:42", "application/sdp", "v=0\r\n", nil)
	if res.status != http.StatusBadRequest { // malformed first, before the stream lookup
		t.Fatalf("after end: %d %s", res.status, res.body)
	}
}
