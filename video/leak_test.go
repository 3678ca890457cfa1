package video

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TestViewerJoinLeaveLeak joins and leaves 1,000 viewers (raceJoins under
// the race detector, where pion is ~10x slower) of one published stream;
// each waits for its first keyframe before leaving. Afterwards no
// goroutine, PeerConnection or session may remain.
func TestViewerJoinLeaveLeak(t *testing.T) {
	joins := 1000
	if raceEnabled {
		joins = raceJoins
	}
	env := newTestEnv(t, nil)
	startPublisher(t, env, "1")
	// One viewer first, so the keyframe is cached and pion's shared
	// goroutines (UDP mux, timers) exist before the baseline.
	warm, err := startSubscriber(t, env, "unit:1")
	if err != nil {
		t.Fatal(err)
	}
	warm.nextFrame(t, 10*time.Second)
	del(t, env.http.URL+warm.location)
	warm.pc.Close()
	<-warm.trackDone
	waitFor(t, 10*time.Second, func() bool { return env.srv.Metrics().PeerConnections.Load() == 1 })
	base := settleGoroutines(t, 0, 500*time.Millisecond)

	api := clientAPI(t)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(joins) {
				if err := joinAndLeave(t, api, env); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d joins and leaves in %v", joins, time.Since(start).Round(time.Millisecond))

	waitFor(t, 20*time.Second, func() bool { return env.srv.Metrics().PeerConnections.Load() == 1 })
	if v := env.srv.Metrics().Viewers.Load(); v != 0 {
		t.Fatalf("viewers gauge %d after all left", v)
	}
	env.srv.mu.Lock()
	sessions := len(env.srv.sessions)
	env.srv.mu.Unlock()
	if sessions != 1 {
		t.Fatalf("%d sessions left, want 1 (the publisher)", sessions)
	}
	n := settleGoroutines(t, base+5, 20*time.Second)
	t.Logf("goroutines: %d before, %d after", base, n)
	if n > base+5 {
		t.Fatalf("goroutines: %d before, %d after %d joins", base, n, joins)
	}
}

func joinAndLeave(t *testing.T, api *webrtc.API, env *testEnv) error {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		return err
	}
	got := make(chan struct{})
	var once sync.Once
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		go func() {
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				once.Do(func() { close(got) })
			}
		}()
	})
	res, err := negotiate(t, pc, env.http.URL+"/whep/unit:1", nil)
	if err != nil {
		return err
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("viewer got no packet within 10s")
	}
	if code := del(t, env.http.URL+res.location); code != http.StatusOK {
		return fmt.Errorf("DELETE: %d", code)
	}
	return nil
}

func waitFor(t testing.TB, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", within)
		}
		time.Sleep(10 * time.Millisecond) // polling gauges that have no change notification
	}
}
