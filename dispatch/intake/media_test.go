package intake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testJPEG is a real JPEG as a phone camera would send (encoded here).
func testJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testPNG(t testing.TB) []byte {
	var b bytes.Buffer
	png.Encode(&b, image.NewGray(image.Rect(0, 0, 8, 8)))
	return b.Bytes()
}

func ftyp(brand string) []byte {
	return append([]byte("\x00\x00\x00\x18ftyp"+brand+"\x00\x00\x00\x00isom"), make([]byte, 64)...)
}

// Headers as the real formats lay them out.
var mediaSamples = map[string]struct {
	head []byte
	mime string
}{
	"webp":      {[]byte("RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00"), "image/webp"},
	"wav":       {[]byte("RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00"), "audio/wav"},
	"heic":      {ftyp("heic"), "image/heic"},
	"avif":      {ftyp("avif"), "image/avif"},
	"mp4":       {ftyp("mp42"), "video/mp4"},
	"iphone":    {ftyp("qt  "), "video/quicktime"},
	"m4a":       {ftyp("M4A "), "audio/mp4"},
	"3gp":       {ftyp("3gp4"), "video/3gpp"},
	"webm":      {[]byte("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm"), "video/webm"},
	"mkv":       {[]byte("\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x88matroska"), "video/x-matroska"},
	"voice-ogg": {[]byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04\x00\x00\x00\x00\x00\x00\x00\x00\x01\x13OpusHead"), "audio/ogg"},
	"mp3-id3":   {[]byte("ID3\x04\x00\x00\x00\x00\x00\x00"), "audio/mpeg"},
	"mp3-frame": {[]byte{0xFF, 0xFB, 0x90, 0x64, 0, 0}, "audio/mpeg"},
	"aac-adts":  {[]byte{0xFF, 0xF1, 0x50, 0x80, 0x02, 0x1F, 0xFC}, "audio/aac"},
	"amr":       {[]byte("#!AMR\n\x3c\x48\xf5"), "audio/amr"},
	"amr-wb":    {[]byte("#!AMR-WB\n\x24"), "audio/amr-wb"},
}

func TestSniff(t *testing.T) {
	if mt, err := Sniff(testJPEG(t, 16, 16)); err != nil || mt.MIME != "image/jpeg" || mt.Kind != KindImage {
		t.Fatalf("jpeg: %+v %v", mt, err)
	}
	if mt, err := Sniff(testPNG(t)); err != nil || mt.MIME != "image/png" {
		t.Fatalf("png: %+v %v", mt, err)
	}
	for name, s := range mediaSamples {
		t.Run(name, func(t *testing.T) {
			mt, err := Sniff(s.head)
			if err != nil || mt.MIME != s.mime {
				t.Fatalf("got %+v %v; want %s", mt, err, s.mime)
			}
		})
	}
}

func TestCheckUploadDisguised(t *testing.T) {
	for _, tc := range []struct {
		name, declared string
		body           []byte
		want           error
	}{
		{"exe as jpeg", "image/jpeg", []byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00"), ErrDisguisedMedia},
		{"elf as mp4", "video/mp4", []byte("\x7fELF\x02\x01\x01"), ErrDisguisedMedia},
		{"zip as png", "image/png", []byte("PK\x03\x04\x14\x00\x00\x00"), ErrDisguisedMedia},
		{"apk undeclared", "", []byte("PK\x03\x04\x14\x00\x08\x08"), ErrDisguisedMedia},
		{"html as jpeg", "image/jpeg", []byte("\xef\xbb\xbf\n  <!DOCTYPE html><html><script>alert(1)</script>"), ErrDisguisedMedia},
		{"svg as image", "image/svg+xml", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), ErrDisguisedMedia},
		{"pdf as jpeg", "image/jpeg", []byte("%PDF-1.7\n"), ErrDisguisedMedia},
		{"script as audio", "audio/ogg", []byte("#!/bin/sh\nrm -rf /"), ErrDisguisedMedia},
		{"text declared", "text/html", testJPEG(t, 4, 4), ErrUnsupportedMedia},
		{"random bytes", "image/jpeg", []byte("hello world, this is not media"), ErrUnsupportedMedia},
		{"bad content type", "image/jpeg; ===", testJPEG(t, 4, 4), ErrUnsupportedMedia},
		{"unknown ftyp", "video/mp4", ftyp("zzzz"), ErrUnsupportedMedia},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := CheckUpload(tc.body, tc.declared); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
		})
	}
	// Mislabelled but real media is accepted by its bytes.
	if mt, err := CheckUpload(ftyp("heic"), "image/jpeg"); err != nil || mt.MIME != "image/heic" {
		t.Fatalf("heic labelled jpeg: %+v %v", mt, err)
	}
}

func countFiles(t *testing.T, dir string) int {
	n := 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func TestBlobStore(t *testing.T) {
	dir := t.TempDir()
	s, err := NewBlobStore(BlobStoreConfig{Dir: dir, Limits: MediaLimits{Image: 64 << 10, Audio: 1 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	photo := testJPEG(t, 64, 64)
	ref, err := s.Put(bytes.NewReader(photo), "image/jpeg")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(photo)
	if ref.SHA256 != hex.EncodeToString(sum[:]) || ref.Size != int64(len(photo)) || ref.MIME != "image/jpeg" {
		t.Fatalf("ref = %+v", ref)
	}
	want := filepath.Join(dir, "sha256", ref.SHA256[:2], ref.SHA256[2:])
	if b, err := os.ReadFile(want); err != nil || !bytes.Equal(b, photo) {
		t.Fatalf("stored file at %s: %v", want, err)
	}
	// Idempotent.
	ref2, err := s.Put(bytes.NewReader(photo), "")
	if err != nil || ref2 != ref || countFiles(t, dir) != 1 {
		t.Fatalf("second put: %+v %v, %d files", ref2, err, countFiles(t, dir))
	}
	f, err := s.Open(ref.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, photo) {
		t.Fatal("Open returned other bytes")
	}
	if _, err := s.Open(strings.Repeat("0", 64)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
	if _, err := s.Open("../../etc/passwd"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("path blob id: %v", err)
	}
	if _, err := s.Open(strings.ToUpper(ref.SHA256)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("upper-case id: %v", err)
	}

	// Rejections leave nothing behind.
	for _, tc := range []struct {
		name string
		r    io.Reader
		decl string
		want error
	}{
		{"oversize audio", io.MultiReader(bytes.NewReader(mediaSamples["amr"].head), bytes.NewReader(make([]byte, 2<<10))), "audio/amr", ErrTooLarge},
		{"oversize image streamed", io.MultiReader(bytes.NewReader(photo[:100]), zeros{}), "image/jpeg", ErrTooLarge},
		{"disguised", strings.NewReader("MZ\x90\x00 this program cannot be run in DOS mode"), "image/jpeg", ErrDisguisedMedia},
		{"empty", strings.NewReader(""), "image/jpeg", ErrUnsupportedMedia},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Put(tc.r, tc.decl); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
			if n := countFiles(t, dir); n != 1 {
				t.Fatalf("%d files in store after rejection; want 1", n)
			}
		})
	}
	// A temp file left by a crash is removed when the store is reopened.
	os.WriteFile(filepath.Join(dir, "tmp", "put-123"), []byte("partial"), 0o600)
	if _, err := NewBlobStore(BlobStoreConfig{Dir: dir}); err != nil || countFiles(t, dir) != 1 {
		t.Fatalf("reopen: %v, %d files", err, countFiles(t, dir))
	}
	// Exactly at the limit is accepted.
	exact := append(append([]byte{}, mediaSamples["amr"].head...), make([]byte, 1<<10-len(mediaSamples["amr"].head))...)
	if _, err := s.Put(bytes.NewReader(exact), ""); err != nil {
		t.Fatalf("exactly at limit: %v", err)
	}
}

// zeros is an endless reader: the store must stop at its limit.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func FuzzCheckUpload(f *testing.F) {
	f.Add(testJPEG(f, 8, 8), "image/jpeg")
	f.Add(testPNG(f), "image/png")
	for _, s := range mediaSamples {
		f.Add(s.head, s.mime)
	}
	f.Add([]byte("MZ\x90\x00"), "image/jpeg")
	f.Add([]byte("<html>"), "")
	f.Fuzz(func(t *testing.T, head []byte, declared string) {
		mt, err := CheckUpload(head, declared)
		if err != nil {
			if !errors.Is(err, ErrUnsupportedMedia) && !errors.Is(err, ErrDisguisedMedia) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if mt.Kind != KindImage && mt.Kind != KindVideo && mt.Kind != KindAudio {
			t.Fatalf("accepted kind %q", mt.Kind)
		}
		if dangerous(head) != "" && !bytes.HasPrefix(head, []byte("#!AMR")) {
			t.Fatalf("accepted dangerous bytes as %+v", mt)
		}
	})
}

func TestBlobStoreConcurrentSameContent(t *testing.T) {
	dir := t.TempDir()
	s, _ := NewBlobStore(BlobStoreConfig{Dir: dir})
	photo := testJPEG(t, 48, 48)
	refs := make(chan MediaRef, 8)
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			ref, err := s.Put(bytes.NewReader(photo), "image/jpeg")
			refs <- ref
			errs <- err
		}()
	}
	first := <-refs
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 8; i++ {
		if r := <-refs; r != first {
			t.Fatalf("ref %+v != %+v", r, first)
		}
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := countFiles(t, dir); n != 1 {
		t.Fatalf("%d files; want 1 (temp files must be gone)", n)
	}
}
