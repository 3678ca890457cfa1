// Package videotest holds what tests of the video path share: the H.264
// test clip in video/testdata, split into access units as a camera or a
// body-cam would send them.
package videotest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// ClipPath is the absolute path of video/testdata/clip.h264 (Annex-B,
// baseline profile, 25 fps, an IDR every 2 s).
func ClipPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "clip.h264")
}

// Clip returns the test clip as access units, each in Annex-B form: a frame
// ends with its slice NAL (types 1 and 5), and SPS/PPS travel with the IDR
// that follows them. It fails the test if the clip has fewer than min frames.
func Clip(t testing.TB, min int) [][]byte {
	t.Helper()
	data, err := os.ReadFile(ClipPath())
	if err != nil {
		t.Fatal(err)
	}
	var aus [][]byte
	var cur []byte
	for _, nal := range SplitAnnexB(data) {
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, nal...)
		if typ := nal[0] & 0x1f; typ == 1 || typ == 5 {
			aus = append(aus, cur)
			cur = nil
		}
	}
	if len(aus) < min {
		t.Fatalf("clip has %d access units, want at least %d", len(aus), min)
	}
	return aus
}

// SplitAnnexB returns the NAL units of an Annex-B byte stream, without
// start codes or trailing zero bytes.
func SplitAnnexB(b []byte) [][]byte {
	var nals [][]byte
	start := -1
	for i := 0; i+3 <= len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				for end > start && b[end-1] == 0 {
					end--
				}
				nals = append(nals, b[start:end])
			}
			start = i + 3
			i += 2
		}
	}
	if start >= 0 && start < len(b) {
		nals = append(nals, b[start:])
	}
	return nals
}
