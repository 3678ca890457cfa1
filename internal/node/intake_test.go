package node

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
