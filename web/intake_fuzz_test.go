package web

import (
	"bytes"
	"mime/multipart"
	"net/textproto"
	"testing"

	ik "github.com/kuzet/kuzet/dispatch/intake"
)

// FuzzReadReportUpload feeds arbitrary multipart bodies to the citizen
// report reader. It must never panic, and a rejected upload must leave no
// new file in the media store.
func FuzzReadReportUpload(f *testing.F) {
	jpg := testJPEG(f)
	seed := func(parts ...[3]string) []byte {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.SetBoundary("kuzetboundary")
		for _, p := range parts {
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="`+p[0]+`"; filename="x"`)
			h.Set("Content-Type", p[1])
			w, _ := mw.CreatePart(h)
			w.Write([]byte(p[2]))
		}
		mw.Close()
		return b.Bytes()
	}
	report := `{"text":"Драка у магазина","language":"ru","location":{"lat":43.2,"lon":76.9}}`
	f.Add(seed([3]string{"report", "application/json", report}))
	f.Add(seed([3]string{"report", "application/json", report}, [3]string{"media", "image/jpeg", string(jpg)}))
	f.Add(seed([3]string{"report", "application/json", `{"language":"kk"}`}, [3]string{"media", "image/jpeg", string(jpg)}))
	f.Add(seed([3]string{"media", "image/jpeg", string(jpg)}, [3]string{"report", "application/json", report}, [3]string{"media", "video/mp4", "MZ\x90\x00"}))
	f.Add(seed([3]string{"report", "application/json", report}, [3]string{"media", "image/jpeg", "<html><script>x</script>"}))
	f.Add([]byte("--kuzetboundary\r\nContent-Disposition: form-data; name=\"report\"\r\n\r\n{\"text\":\"x\"\r\n--kuzetboundary--"))
	f.Add([]byte("garbage"))
	blobs, err := ik.NewBlobStore(ik.BlobStoreConfig{Dir: f.TempDir(), Limits: ik.MediaLimits{Image: 64 << 10, Video: 64 << 10, Audio: 64 << 10}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rep, created, err := readReportUpload(bytes.NewReader(body), "kuzetboundary", ik.ChannelApp, blobs)
		if err != nil {
			if len(created) != 0 {
				t.Fatalf("rejected upload reports %d stored files", len(created))
			}
			return
		}
		if rep.Text == "" && len(rep.Media) == 0 {
			t.Fatalf("accepted an empty report: %+v", rep)
		}
		for _, m := range rep.Media {
			fh, err := blobs.Open(m.SHA256)
			if err != nil {
				t.Fatalf("accepted media not in the store: %v", err)
			}
			fh.Close()
		}
		for _, sum := range created {
			blobs.Remove(sum)
		}
	})
}
