package node

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/kuzet/kuzet/web"
)

// TestAMLAcrossNodes: behind a balancer the handset's AML message reaches
// node A before the PBX offers the call, and the PBX event reaches node B.
// The fix waiting on node A is attached to the call node B created, once.
func TestAMLAcrossNodes(t *testing.T) {
	rs, rdb := redisWithSupervisor(t)
	ctx := context.Background()
	const ctiToken, amlKey = "pbx-token-0123456789", "aml-key-0123456789"
	ns := newNodes(t)
	cfg := Config{RedisURL: rs.URL(), Centre: "ALA", TimeZone: "Asia/Almaty",
		Intake: web.IntakeConfig{CTIToken: ctiToken, AMLHMACKey: []byte(amlKey), AMLHMACAlgorithm: "sha1", AMLWait: time.Minute}}
	nodeA, nodeB := ns.start(cfg), ns.start(cfg)
	post := func(url, ctype, auth string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	now := time.Now()
	form := fmt.Sprintf("v=1&emergency_number=102&source=call&time=%d&location_latitude=43.251234&location_longitude=76.912345"+
		"&location_time=%d&location_accuracy=8.0&location_source=GPS&location_confidence=68&device_number=%%2B77015550101",
		now.UnixMilli(), now.UnixMilli())
	m := hmac.New(sha1.New, []byte(amlKey))
	m.Write([]byte(form))
	st, b := post(nodeA+"/ingest/aml", "application/x-www-form-urlencoded", "", []byte(form+"&hmac="+hex.EncodeToString(m.Sum(nil))))
	if st != 200 || !strings.Contains(string(b), `"pending"`) {
		t.Fatalf("AML on node A: %d %s", st, b)
	}
	ev := fmt.Sprintf(`{"type":"offered","call_id":"1764.42","time":%q,"caller_number":"+77015550101","line":"102-1"}`, now.Add(time.Second).UTC().Format(time.RFC3339Nano))
	st, b = post(nodeB+"/ingest/cti", "application/json", "Bearer "+ctiToken, []byte(ev))
	var call struct {
		ID  string `json:"id"`
		AML *struct {
			Lat float64 `json:"lat"`
		} `json:"aml"`
	}
	if err := json.Unmarshal(b, &call); st != 200 || err != nil || call.ID == "" {
		t.Fatalf("CTI on node B: %d %s", st, b)
	}
	st, b = post(nodeB+"/api/v1/sessions", "application/json", "", []byte(`{"username":"sup","password":"supervisor-password"}`))
	var ses struct{ Token string }
	if json.Unmarshal(b, &ses); st != 201 {
		t.Fatalf("sign in: %d %s", st, b)
	}
	get := func(base string) []byte {
		req, _ := http.NewRequest("GET", base+"/api/v1/calls/"+call.ID, nil)
		req.Header.Set("Authorization", "Bearer "+ses.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	eventually(t, "node A's fix on node B's call", func() bool {
		return strings.Contains(string(get(nodeB)), `"lat":43.251234`)
	})
	// Attached once: one call.aml_located in the shared journal.
	time.Sleep(500 * time.Millisecond)
	msgs, err := rdb.XRange(ctx, "kuzet:dispatch:journal", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	located := 0
	for _, m := range msgs {
		if body, _ := m.Values["b"].(string); strings.Contains(body, `"call.aml_located"`) {
			located++
		}
	}
	if located != 1 {
		t.Fatalf("%d call.aml_located records, want 1", located)
	}
	ns.stop()
}

// TestMediaAcrossNodes: a citizen's photo uploaded through node A (its own
// media directory) is served by node B, which fetches it from node A with
// the caller's token; a caller without a token gets nothing from either.
func TestMediaAcrossNodes(t *testing.T) {
	rs, _ := redisWithSupervisor(t)
	ns := newNodes(t)
	cfg := Config{RedisURL: rs.URL(), Centre: "ALA", TimeZone: "Asia/Almaty"}
	nodeA, nodeB := ns.start(cfg), ns.start(cfg)
	img := image.NewRGBA(image.Rect(0, 0, 32, 24))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	var photo bytes.Buffer
	if err := jpeg.Encode(&photo, img, nil); err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	rp, _ := mw.CreateFormField("report")
	rp.Write([]byte(`{"text":"Разбито окно машины во дворе","category":"other","language":"ru","location":{"lat":43.24,"lon":76.91}}`))
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="media"; filename="p.jpg"`)
	h.Set("Content-Type", "image/jpeg")
	mp, _ := mw.CreatePart(h)
	mp.Write(photo.Bytes())
	mw.Close()
	req, _ := http.NewRequest("POST", nodeA+"/api/v1/reports?channel=web", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var receipt struct {
		ReportID string `json:"report_id"`
	}
	json.NewDecoder(resp.Body).Decode(&receipt)
	resp.Body.Close()
	if resp.StatusCode != 201 || receipt.ReportID == "" {
		t.Fatalf("report on node A: %d", resp.StatusCode)
	}
	do := func(method, url, tok string, in []byte) (int, []byte, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(in))
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}
	st, b, _ := do("POST", nodeB+"/api/v1/sessions", "", []byte(`{"username":"sup","password":"supervisor-password"}`))
	var ses struct{ Token string }
	if json.Unmarshal(b, &ses); st != 201 {
		t.Fatalf("sign in: %d %s", st, b)
	}
	var report struct {
		Media []struct {
			SHA256 string `json:"sha256"`
		} `json:"media"`
	}
	eventually(t, "node B knows the report", func() bool {
		st, b, _ := do("GET", nodeB+"/api/v1/reports/"+receipt.ReportID, ses.Token, nil)
		return st == 200 && json.Unmarshal(b, &report) == nil && len(report.Media) == 1
	})
	url := nodeB + "/api/v1/media/" + report.Media[0].SHA256
	st, got, hdr := do("GET", url, ses.Token, nil)
	if st != 200 || !bytes.Equal(got, photo.Bytes()) || hdr.Get("Content-Type") != "image/jpeg" || hdr.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("photo through node B: %d %q, %d bytes (want %d)", st, hdr.Get("Content-Type"), len(got), photo.Len())
	}
	if st, _, _ := do("GET", url, "", nil); st != http.StatusUnauthorized {
		t.Fatalf("photo without a token: %d", st)
	}
	ns.stop()
}
