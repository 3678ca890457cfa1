package video

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

func TestInspectH264(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xc0, 0x1f}
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	for _, tc := range []struct {
		name     string
		payload  []byte
		idr      bool
		sps, pps bool
	}{
		{"IDR single", []byte{0x65, 1, 2}, true, false, false},
		{"P slice", []byte{0x41, 1, 2}, false, false, false},
		{"STAP-A SPS PPS", stapA(sps, pps), false, true, true},
		{"FU-A IDR start", []byte{0x7c, 0x85, 1}, true, false, false},
		{"FU-A IDR middle", []byte{0x7c, 0x05, 1}, false, false, false},
		{"truncated STAP-A", []byte{0x78, 0, 9, 0x67}, false, false, false},
		{"empty", nil, false, false, false},
	} {
		i := inspectH264(tc.payload)
		if i.idr != tc.idr || (i.sps != nil) != tc.sps || (i.pps != nil) != tc.pps {
			t.Errorf("%s: %+v", tc.name, i)
		}
	}
}

// splitH264 output, depacketized, must give back the original NAL units.
func TestSplitH264RoundTrip(t *testing.T) {
	big := append([]byte{0x65}, bytes.Repeat([]byte{0xab, 0xcd, 0x01}, 2000)...)
	small := []byte{0x41, 9, 9, 9}
	for _, tc := range []struct {
		name    string
		payload []byte
		want    []byte
	}{
		{"single fits", small, small},
		{"single oversize", big, big},
		{"STAP-A oversize", stapA(big[:1500], small), append(append([]byte{0, 0, 0, 1}, big[:1500]...), append([]byte{0, 0, 0, 1}, small...)...)},
	} {
		var dep codecs.H264Packet
		var got []byte
		parts := splitH264(tc.payload, maxRTPPayload)
		for _, p := range parts {
			if len(p) > maxRTPPayload {
				t.Fatalf("%s: part of %d bytes", tc.name, len(p))
			}
			out, err := dep.Unmarshal(p)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			got = append(got, out...)
		}
		want := tc.want
		if !bytes.HasPrefix(want, []byte{0, 0, 0, 1}) {
			want = append([]byte{0, 0, 0, 1}, want...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: round trip differs (%d vs %d bytes)", tc.name, len(got), len(want))
		}
	}
	// An oversize FU-A fragment keeps start on the first piece only.
	fu := append([]byte{0x7c, 0x85}, bytes.Repeat([]byte{1}, 3000)...)
	parts := splitH264(fu, maxRTPPayload)
	for i, p := range parts {
		if (p[1]&0x80 != 0) != (i == 0) || p[1]&0x40 != 0 {
			t.Fatalf("fragment %d header %08b", i, p[1])
		}
	}
}

// A viewer that never reads loses packets; the others get every one and
// the source never blocks.
func TestForwarderSlowViewer(t *testing.T) {
	var m Metrics
	f := newForwarder(&m, true, false, nil, nil, nil)
	fast := newViewer(16, nil, nil)
	slow := newViewer(16, nil, nil)
	f.add(fast)
	f.add(slow)
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range fast.q {
			got.Add(1)
		}
	}()
	const n = 1000
	start := time.Now()
	for i := 0; i < n; i++ {
		f.write(&packet{hdr: rtp.Header{SequenceNumber: uint16(i), Marker: true}, payload: []byte{0x41}, video: true})
		for got.Load() < int64(i+1) { // lockstep with the fast reader
			if time.Since(start) > 10*time.Second {
				t.Fatal("fast viewer starved")
			}
		}
	}
	f.end()
	<-done
	if got.Load() != n {
		t.Fatalf("fast viewer got %d of %d", got.Load(), n)
	}
	if d := f.dropped.Load(); d != n-16 {
		t.Fatalf("slow viewer drops %d, want %d", d, n-16)
	}
}

// The cache holds the last complete IDR access unit with SPS/PPS in front,
// taken from the SDP when the stream does not repeat them in band.
func TestKeyframeCache(t *testing.T) {
	var m Metrics
	sps, pps := []byte{0x67, 1}, []byte{0x68, 2}
	f := newForwarder(&m, true, false, sps, pps, nil)
	seq := uint16(0)
	w := func(payload []byte, marker bool) {
		f.write(&packet{hdr: rtp.Header{SequenceNumber: seq, Timestamp: uint32(seq) * 100, Marker: marker}, payload: payload, video: true})
		seq++
	}
	w([]byte{0x7c, 0x85, 1}, false) // FU-A IDR start
	w([]byte{0x7c, 0x45, 2}, true)  // FU-A IDR end
	w([]byte{0x41, 3}, true)        // P frame
	key, _, _ := f.add(newViewer(16, nil, nil))
	if len(key) != 3 || !inspectH264(key[0].payload).idr && inspectH264(key[0].payload).sps == nil {
		t.Fatalf("cache has %d packets", len(key))
	}
	if i := inspectH264(key[0].payload); i.sps == nil || i.pps == nil || !strings.HasPrefix(string(i.sps), "\x67") {
		t.Fatalf("cache does not start with SPS/PPS: %+v", i)
	}
	if !key[2].hdr.Marker || key[1].hdr.Marker {
		t.Fatal("markers of the cached access unit changed")
	}
	if p := f.lookup(2); p == nil || p.payload[0] != 0x41 {
		t.Fatal("ring lookup")
	}
	if f.lookup(2+rtxRing) != nil {
		t.Fatal("ring returned a packet with another sequence number")
	}
}
