package web

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/internal/auth"
)

func init() {
	addMatrix(map[string]string{
		"GET /api/v1/intake":                     "calltaker dispatcher supervisor viewer",
		"GET /api/v1/reports/{id}":               "calltaker dispatcher supervisor viewer",
		"POST /api/v1/reports/{id}/incident":     "calltaker dispatcher supervisor",
		"POST /api/v1/reports/{id}/status":       "calltaker dispatcher supervisor",
		"POST /api/v1/incidents/{id}/merge":      "calltaker dispatcher supervisor",
		"POST /api/v1/incidents/{id}/merge/undo": "supervisor",
		"POST /api/v1/calls/{id}/queue":          "calltaker dispatcher supervisor",
		"POST /api/v1/calls/{id}/use-aml":        "calltaker dispatcher supervisor",
		"GET /api/v1/duplicates":                 "calltaker dispatcher supervisor viewer",
		"GET /api/v1/stats/answer-times":         "calltaker dispatcher supervisor viewer",
		"GET /api/v1/media/{sha256}":             "calltaker dispatcher supervisor viewer",
		"GET /api/v1/incidents/{id}/eido":        "calltaker dispatcher supervisor viewer",
	})
}

// Secrets of the fixture's intake doors.
const (
	testCTIToken  = "cti-token-5f2d9a61c0b84e7f"
	testSMSToken  = "sms-gateway-token-77c1e0"
	testAMLKey    = "aml-shared-key-kz-2026"
	testBotToken  = "7012345678:AAE-kuzet_test_token_QWERTYUIOPasdfgh"
	testTGSecret  = "kuzet_webhook_S3cret-x"
	testReportCap = 3 // report burst per client in the fixture
)

// botAPIs holds each test's local Bot API server, found by test name.
var botAPIs sync.Map // testing.TB → *botAPI

// intakeFixtureConfig configures every door of the fixture: a local
// server speaking the Telegram Bot API's JSON, media under dir.
func intakeFixtureConfig(t testing.TB, dir string) IntakeConfig {
	api := &botAPI{files: map[string][]byte{}, ids: map[string]string{}}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	botAPIs.Store(t, api)
	return IntakeConfig{
		CTIToken: testCTIToken, SMSToken: testSMSToken, AMLHMACKey: []byte(testAMLKey), AMLHMACAlgorithm: "sha1",
		TelegramToken: testBotToken, TelegramSecret: testTGSecret, TelegramAPI: srv.URL,
		MediaDir: filepath.Join(dir, "media"), ReportRate: 0.01, ReportBurst: testReportCap, ChatBurst: 30,
		StatusURL: "https://102.example.kz/report/status/",
	}
}

func (f *fixture) botAPI() *botAPI {
	v, _ := botAPIs.Load(f.t)
	return v.(*botAPI)
}

// botAPI is a local server speaking the Telegram Bot API's JSON
// (sendMessage, getFile, file download): api.telegram.org cannot be
// reached from tests.
type botAPI struct {
	mu    sync.Mutex
	sent  []map[string]any
	files map[string][]byte // file_path → bytes
	ids   map[string]string // file_id → file_path
}

func (a *botAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p, ok := strings.CutPrefix(r.URL.Path, "/file/bot"+testBotToken+"/"); ok {
		a.mu.Lock()
		b, ok := a.files[p]
		a.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	method, ok := strings.CutPrefix(r.URL.Path, "/bot"+testBotToken+"/")
	var req map[string]any
	if !ok || json.NewDecoder(r.Body).Decode(&req) != nil {
		w.WriteHeader(400)
		fmt.Fprint(w, `{"ok":false,"error_code":400,"description":"Bad Request"}`)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch method {
	case "sendMessage":
		a.sent = append(a.sent, req)
		fmt.Fprintf(w, `{"ok":true,"result":{"message_id":%d,"date":%d,"chat":{"id":%v,"type":"private"},"text":%q}}`,
			len(a.sent)+100, time.Now().Unix(), req["chat_id"], req["text"])
	case "getFile":
		id, _ := req["file_id"].(string)
		p, ok := a.ids[id]
		if !ok {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"ok":false,"error_code":400,"description":"Bad Request: invalid file_id"}`)
			return
		}
		fmt.Fprintf(w, `{"ok":true,"result":{"file_id":%q,"file_unique_id":"u1","file_size":%d,"file_path":%q}}`, id, len(a.files[p]), p)
	default:
		w.WriteHeader(404)
		fmt.Fprint(w, `{"ok":false,"error_code":404,"description":"Not Found"}`)
	}
}

func (a *botAPI) last() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.sent) == 0 {
		return ""
	}
	s, _ := a.sent[len(a.sent)-1]["text"].(string)
	return s
}

func testJPEG(t testing.TB) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 5), 90, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// ingest posts to an ingest door with a content type and headers.
func (f *fixture) ingest(path, ctype string, body []byte, hdr ...string) answer {
	f.t.Helper()
	req, _ := http.NewRequest("POST", f.http.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode}
	a.body, _ = io.ReadAll(resp.Body)
	json.Unmarshal(a.body, &a.err)
	if resp.StatusCode >= 400 && (a.err.Code == "" || a.err.Message == "") {
		f.t.Errorf("POST %s: error answer %d is not {code, message}: %s", path, resp.StatusCode, a.body)
	}
	if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
		f.t.Errorf("POST %s: 429 without Retry-After", path)
	}
	return a
}

func (f *fixture) cti(ev string) answer {
	f.t.Helper()
	return f.ingest("/ingest/cti", "application/json", []byte(ev), "Authorization", "Bearer "+testCTIToken)
}

// amlBody is an Android ELS-style AML form for a handset at lat, lon,
// signed with the fixture's key (ETSI TS 103 625 §7.4.3: HMAC over the
// body before "&hmac=").
func amlBody(number string, lat, lon, acc float64, at time.Time) []byte {
	body := fmt.Sprintf("v=1&emergency_number=102&source=call&time=%d&location_latitude=%.6f&location_longitude=%.6f"+
		"&location_time=%d&location_accuracy=%.1f&location_source=GPS&location_confidence=68"+
		"&device_number=%s&device_imei=354773072099116&device_imsi=401021234567890"+
		"&cell_home_mcc=401&cell_home_mnc=02&cell_network_mcc=401&cell_network_mnc=02&device_languages=kk-KZ%%2Cru-RU",
		at.UnixMilli(), lat, lon, at.UnixMilli(), acc, strings.ReplaceAll(number, "+", "%2B"))
	m := hmac.New(sha1.New, []byte(testAMLKey))
	m.Write([]byte(body))
	return []byte(body + "&hmac=" + hex.EncodeToString(m.Sum(nil)))
}

func offered(id, number string, at time.Time) string {
	return fmt.Sprintf(`{"type":"offered","call_id":%q,"time":%q,"caller_number":%q,"line":"102-1","trunk":"kcell-sip"}`, id, at.Format(time.RFC3339Nano), number)
}

func decodeAs[T any](t testing.TB, a answer) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
	return v
}

type queueAnswer struct {
	Items []intakeItem `json:"items"`
}

func (f *fixture) queueItem(id string) intakeItem {
	f.t.Helper()
	q := decodeAs[queueAnswer](f.t, f.do("GET", "/api/v1/intake", f.tokens[auth.RoleCallTaker], nil))
	for _, it := range q.Items {
		if it.ID == id {
			return it
		}
	}
	f.t.Fatalf("%s not in the intake queue", id)
	return intakeItem{}
}

// Must show: an AML POST and a CTI offered event for the same number →
// the call-taker creates an incident whose location is the AML fix.
func TestAMLThenOfferedIncidentAtFix(t *testing.T) {
	f := newFixture(t)
	tok := f.tokens[auth.RoleCallTaker]
	now := time.Now().UTC().Truncate(time.Millisecond)
	// The handset sends AML as soon as it dials; the PBX offers the call after.
	a := f.ingest("/ingest/aml", "application/x-www-form-urlencoded", amlBody("+77012223344", 43.238120, 76.945120, 14, now))
	if a.status != 200 || !strings.Contains(string(a.body), `"pending"`) {
		t.Fatalf("AML before the call: %d %s", a.status, a.body)
	}
	c := decodeAs[dispatch.Call](t, f.cti(offered("1732555440.17", "+77012223344", now.Add(time.Second))))
	if c.AML == nil || c.AML.Location.Lat != 43.23812 || c.AML.Location.Accuracy != 14 || c.AML.Method != "GNSS" || c.Location != nil || c.Queue != "102" {
		t.Fatalf("offered call: %+v aml %+v", c, c.AML)
	}
	if a := f.cti(`{"type":"answered","call_id":"1732555440.17","time":"` + now.Add(4*time.Second).Format(time.RFC3339Nano) + `","operator":"op.ainur","extension":"2101"}`); a.status != 200 {
		t.Fatalf("answered: %d %s", a.status, a.body)
	}
	it := f.queueItem(c.ID)
	if it.State != "active" || it.AML == nil || it.Queue != "102" || it.CallerNumber != "+77012223344" {
		t.Fatalf("intake row: %+v", it)
	}
	// The call-taker uses the fix and creates the incident there.
	a = f.do("POST", "/api/v1/calls/"+c.ID+"/use-aml", tok, nil)
	c = decodeAs[dispatch.Call](t, a)
	if a.status != 200 || c.Location == nil || c.Location.Source != "aml" || c.Location.Lat != 43.23812 {
		t.Fatalf("use-aml: %d %s", a.status, a.body)
	}
	a = f.do("POST", "/api/v1/incidents", tok, map[string]any{"type": "ASSAULT", "location": c.Location, "call_ids": []string{c.ID}})
	in := decodeAs[dispatch.Incident](t, a)
	if a.status != 201 || in.Location.Lat != 43.23812 || in.Location.Lon != 76.94512 || in.Location.Source != "aml" || in.Location.Accuracy != 14 {
		t.Fatalf("incident: %d %s", a.status, a.body)
	}
	// A later, better fix for the same live call attaches at once, and
	// using it moves the AML-located incident too.
	a = f.ingest("/ingest/aml", "application/x-www-form-urlencoded", amlBody("+77012223344", 43.238300, 76.945200, 5, now.Add(20*time.Second)))
	if a.status != 200 || !strings.Contains(string(a.body), c.ID) {
		t.Fatalf("AML for the live call: %s", a.body)
	}
	f.do("POST", "/api/v1/calls/"+c.ID+"/use-aml", tok, nil)
	if got, _ := f.svc.Incident(in.ID); got.Location.Lat != 43.2383 {
		t.Fatalf("incident location after the better fix: %+v", got.Location)
	}
	// A location the operator typed is never overwritten by AML.
	if a := f.do("PUT", "/api/v1/calls/"+c.ID+"/location", tok, `{"lat":43.25,"lon":76.9,"source":"operator","address":"Абай 52"}`); a.status != 200 {
		t.Fatalf("typed location: %d %s", a.status, a.body)
	}
	if a := f.do("POST", "/api/v1/calls/"+c.ID+"/use-aml", tok, nil); a.status != 409 || !strings.Contains(a.err.Message, "typed") {
		t.Fatalf("use-aml over a typed location: %d %s", a.status, a.body)
	}
	if got, _ := f.svc.Call(c.ID); got.Location.Lat != 43.25 || got.AML.Location.Lat != 43.2383 {
		t.Fatalf("typed location changed: %+v", got)
	}
	// The SMS form of AML, as the SMS gateway hands it over.
	f.cti(offered("1732555499.2", "+77011234567", now.Add(30*time.Second)))
	sms := `{"from":"87011234567","text":"A\"ML=1;lt=+43.23812;lg=+076.94512;rd=50;top=20261125172400;lc=68;pm=G;si=401021234567890;ei=354773072099116;mcc=401;mnc=02;ml=129"}`
	a = f.ingest("/ingest/aml-sms", "application/json", []byte(sms), "Authorization", "Bearer "+testSMSToken)
	if a.status != 200 || !strings.Contains(string(a.body), "attached") {
		t.Fatalf("AML SMS: %d %s", a.status, a.body)
	}
	// Ended and transferred events, and the 1402 line.
	if a := f.cti(`{"type":"transferred","call_id":"1732555499.2","time":"` + now.Add(40*time.Second).Format(time.RFC3339Nano) + `","to":"1402"}`); a.status != 200 {
		t.Fatalf("transferred: %s", a.body)
	}
	if a := f.cti(`{"type":"ended","call_id":"1732555499.2","time":"` + now.Add(50*time.Second).Format(time.RFC3339Nano) + `","cause":"transferred_out"}`); a.status != 200 {
		t.Fatalf("ended: %s", a.body)
	}
	c1402 := decodeAs[dispatch.Call](t, f.cti(strings.Replace(offered("1732555500.3", "+77015556677", now), "102-1", "1402-2", 1)))
	if c1402.Queue != "1402" {
		t.Fatalf("1402 line queued to %s", c1402.Queue)
	}
	a = f.do("POST", "/api/v1/calls/"+c1402.ID+"/queue", tok, `{"queue":"102","reason":"caller reports a fight"}`)
	if a.status != 200 || decodeAs[dispatch.Call](t, a).Queue != "102" {
		t.Fatalf("move queue: %d %s", a.status, a.body)
	}
	// A PBX retry of the same event is answered like the first.
	if a := f.cti(offered("1732555440.17", "+77012223344", now.Add(time.Second))); a.status != 200 || decodeAs[dispatch.Call](t, a).ID != c.ID {
		t.Fatalf("retried offered: %d %s", a.status, a.body)
	}
}

// Must show: a chat-bot conversation with a location and a photo →
// report → incident, over the webhook, with a local Bot API server.
func TestTelegramConversationToIncident(t *testing.T) {
	f := newFixture(t)
	api := f.botAPI()
	photo := testJPEG(t)
	api.mu.Lock()
	api.files["photos/file_17.jpg"], api.ids["AgACAgIAAxkBAAIBQ2VmX3Lg"] = photo, "photos/file_17.jpg"
	api.mu.Unlock()
	update := int64(900000001)
	send := func(msg string) answer {
		update++
		body := fmt.Sprintf(`{"update_id":%d,"message":{"message_id":%d,"from":{"id":482910337,"is_bot":false,"first_name":"Айгерим","language_code":"ru"},"chat":{"id":482910337,"first_name":"Айгерим","type":"private"},"date":%d,%s}}`,
			update, update-900000000, time.Now().Unix(), msg)
		a := f.ingest("/ingest/telegram", "application/json", []byte(body), "X-Telegram-Bot-Api-Secret-Token", testTGSecret)
		if a.status != 200 {
			t.Fatalf("update %d: %d %s", update, a.status, a.body)
		}
		return a
	}
	send(`"text":"/start","entities":[{"offset":0,"length":6,"type":"bot_command"}]`)
	send(`"text":"Русский"`)
	if !strings.HasPrefix(api.last(), "Что случилось?") {
		t.Fatalf("ask what: %q", api.last())
	}
	send(`"text":"Двое мужчин избивают парня у входа в ТРЦ, он лежит на земле"`)
	send(`"location":{"latitude":43.23812,"longitude":76.94512,"horizontal_accuracy":12.5}`)
	send(`"photo":[{"file_id":"AgACAgIAAxkBAAIBQ2VmX3Lg","file_unique_id":"AQADm","file_size":23011,"width":64,"height":48}],"caption":"вот они"`)
	send(`"text":"Готово"`)
	a := send(`"text":"Отправить"`)
	var out struct {
		ReportID string `json:"report_id"`
	}
	json.Unmarshal(a.body, &out)
	if out.ReportID == "" {
		t.Fatalf("no report after confirm: %s", a.body)
	}
	link := api.last()
	i := strings.Index(link, "https://102.example.kz/report/status/")
	if i < 0 {
		t.Fatalf("status link not sent: %q", link)
	}
	token := strings.Fields(link[i+len("https://102.example.kz/report/status/"):])[0]
	it := f.queueItem(out.ReportID)
	if it.Kind != "report" || it.Channel != "telegram" || it.Queue != "102" || it.Location == nil || it.Location.Lat != 43.23812 || len(it.Media) != 1 || it.Category != "violence" {
		t.Fatalf("intake row: %+v", it)
	}
	// The citizen's link says received, and nothing else.
	a = f.do("GET", "/api/v1/reports/status/"+token, "", nil)
	if a.status != 200 || !strings.Contains(string(a.body), `"received"`) || strings.Contains(string(a.body), out.ReportID) {
		t.Fatalf("status: %d %s", a.status, a.body)
	}
	var public map[string]any
	json.Unmarshal(a.body, &public)
	if len(public) != 2 {
		t.Fatalf("public status reveals more than status and time: %s", a.body)
	}
	// The link itself opens a page in Kazakh, Russian and English.
	resp, err := http.Get(f.http.URL + "/report/status/" + token)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "қабылданды") || !strings.Contains(string(page), "принято") ||
		!strings.Contains(string(page), "received") || strings.Contains(string(page), out.ReportID) {
		t.Fatalf("status page: %d %s", resp.StatusCode, page)
	}
	if resp, _ := http.Get(f.http.URL + "/report/status/not-a-real-token"); resp.StatusCode != 404 {
		t.Fatalf("status page for an unknown link: %d", resp.StatusCode)
	}
	// Staff download the photo as an attachment.
	req, _ := http.NewRequest("GET", f.http.URL+"/api/v1/media/"+it.Media[0].SHA256, nil)
	req.Header.Set("Authorization", "Bearer "+f.tokens[auth.RoleDispatcher])
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, photo) || resp.Header.Get("Content-Type") != "image/jpeg" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("media: %d %v", resp.StatusCode, resp.Header)
	}
	if a := f.do("GET", "/api/v1/media/"+it.Media[0].SHA256, "", nil); a.status != 401 {
		t.Fatalf("anonymous media download: %d", a.status)
	}
	// The call-taker turns it into an incident; the link says in progress.
	a = f.do("POST", "/api/v1/reports/"+out.ReportID+"/incident", f.tokens[auth.RoleCallTaker], `{"type":"ASSAULT"}`)
	in := decodeAs[dispatch.Incident](t, a)
	if a.status != 201 || in.Location.Lat != 43.23812 || !strings.Contains(in.Narrative, "избивают") || len(in.ReportIDs) != 1 {
		t.Fatalf("report → incident: %d %s", a.status, a.body)
	}
	if a := f.do("GET", "/api/v1/reports/status/"+token, "", nil); !strings.Contains(string(a.body), `"in_progress"`) {
		t.Fatalf("status after incident: %s", a.body)
	}
	if a := f.do("POST", "/api/v1/reports/"+out.ReportID+"/incident", f.tokens[auth.RoleCallTaker], `{"type":"ASSAULT"}`); a.status != 409 {
		t.Fatalf("second incident from one report: %d", a.status)
	}
	sup := dispatch.Meta{Actor: dispatch.Actor{ID: "user:supervisor1", Supervisor: true}}
	if _, err := f.svc.SetIncidentStatus(context.Background(), sup, in.ID, dispatch.StatusChange{Status: dispatch.IncidentClosed, Disposition: "REPORT"}); err != nil {
		t.Fatal(err)
	}
	if a := f.do("GET", "/api/v1/reports/status/"+token, "", nil); !strings.Contains(string(a.body), `"closed"`) {
		t.Fatalf("status after close: %s", a.body)
	}
	if a := f.do("GET", "/api/v1/incidents/"+in.ID+"/eido", f.tokens[auth.RoleViewer], nil); a.status != 200 || !strings.Contains(string(a.body), `"eidoVersion":"1.0"`) {
		t.Fatalf("eido: %d %s", a.status, a.body)
	}
}

// Must show: a second call 150 m away two minutes later is flagged as a
// likely duplicate and can be merged; a supervisor can undo the merge.
func TestDuplicateCallMergeAndUndo(t *testing.T) {
	f := newFixture(t)
	tok := f.tokens[auth.RoleCallTaker]
	t0 := time.Now().UTC().Add(-3 * time.Minute).Truncate(time.Millisecond)
	lat, lon := 43.256000, 76.928000
	lat2 := lat + 150/111_195.0 // 150 m north
	f.ingest("/ingest/aml", "application/x-www-form-urlencoded", amlBody("+77015550001", lat, lon, 10, t0))
	c1 := decodeAs[dispatch.Call](t, f.cti(offered("pbx.1", "+77015550001", t0)))
	c1 = decodeAs[dispatch.Call](t, f.do("POST", "/api/v1/calls/"+c1.ID+"/use-aml", tok, nil))
	in1 := decodeAs[dispatch.Incident](t, f.do("POST", "/api/v1/incidents", tok, map[string]any{"type": "ASSAULT", "location": c1.Location, "call_ids": []string{c1.ID}}))

	f.ingest("/ingest/aml", "application/x-www-form-urlencoded", amlBody("+77015550002", lat2, lon, 10, t0.Add(2*time.Minute)))
	c2 := decodeAs[dispatch.Call](t, f.cti(offered("pbx.2", "+77015550002", t0.Add(2*time.Minute))))
	it := f.queueItem(c2.ID)
	var dup *dupCandidate
	for i, d := range it.Duplicates {
		if d.Kind == "incident" && d.ID == in1.ID {
			dup = &it.Duplicates[i]
		}
	}
	if dup == nil || math.Abs(dup.DistanceM-150) > 2 || dup.Score < 0.4 {
		t.Fatalf("second call's duplicates: %+v", it.Duplicates)
	}
	// The first call itself: 150 m and the PBX's two minutes apart.
	var first *dupCandidate
	for i, d := range it.Duplicates {
		if d.Kind == "call" && d.ID == c1.ID {
			first = &it.Duplicates[i]
		}
	}
	if first == nil || math.Abs(first.DistanceM-150) > 2 || math.Abs(first.GapS-120) > 0.01 || first.Score < 0.4 {
		t.Fatalf("second call's duplicates: %+v", it.Duplicates)
	}
	// The same candidates by query.
	q := decodeAs[struct{ Candidates []dupCandidate }](t, f.do("GET", fmt.Sprintf("/api/v1/duplicates?lat=%.6f&lon=%.6f", lat2, lon), tok, nil))
	if len(q.Candidates) == 0 {
		t.Fatal("duplicates query found nothing")
	}
	// A call-taker created a second incident anyway; it is merged into the first.
	c2 = decodeAs[dispatch.Call](t, f.do("POST", "/api/v1/calls/"+c2.ID+"/use-aml", tok, nil))
	in2 := decodeAs[dispatch.Incident](t, f.do("POST", "/api/v1/incidents", tok, map[string]any{"type": "ASSAULT", "location": c2.Location, "call_ids": []string{c2.ID}}))
	a := f.do("POST", "/api/v1/incidents/"+in1.ID+"/merge", tok, map[string]string{"kind": "incident", "id": in2.ID, "reason": "same fight, 150 m"})
	merged := decodeAs[dispatch.Incident](t, a)
	if a.status != 200 || len(merged.Merges) != 1 || len(merged.CallIDs) != 2 {
		t.Fatalf("merge: %d %s", a.status, a.body)
	}
	dupInc, _ := f.svc.Incident(in2.ID)
	if dupInc.Status != dispatch.IncidentClosed || dupInc.Disposition != "DUPLICATE" || dupInc.MergedInto != in1.ID {
		t.Fatalf("merged incident: %+v", dupInc)
	}
	if c, _ := f.svc.Call(c2.ID); c.IncidentID != in1.ID {
		t.Fatalf("call of the merged incident is on %s", c.IncidentID)
	}
	// Both EIDOs show the merge.
	if a := f.do("GET", "/api/v1/incidents/"+in1.ID+"/eido", tok, nil); !strings.Contains(string(a.body), `"REPLACING"`) {
		t.Fatalf("surviving EIDO: %s", a.body)
	}
	if a := f.do("GET", "/api/v1/incidents/"+in2.ID+"/eido", tok, nil); !strings.Contains(string(a.body), `"REPLACED"`) {
		t.Fatalf("merged EIDO: %s", a.body)
	}
	// Only a supervisor undoes it.
	undo := map[string]string{"merge_id": merged.Merges[0].ID, "reason": "different incidents after all"}
	if a := f.do("POST", "/api/v1/incidents/"+in1.ID+"/merge/undo", tok, undo); a.status != 403 {
		t.Fatalf("call-taker undo: %d", a.status)
	}
	a = f.do("POST", "/api/v1/incidents/"+in1.ID+"/merge/undo", f.tokens[auth.RoleSupervisor], undo)
	after := decodeAs[dispatch.Incident](t, a)
	if a.status != 200 || after.Merges[0].Undone == nil || len(after.CallIDs) != 1 {
		t.Fatalf("undo: %d %s", a.status, a.body)
	}
	back, _ := f.svc.Incident(in2.ID)
	if back.Status != dispatch.IncidentQueued || back.MergedInto != "" || len(back.CallIDs) != 1 {
		t.Fatalf("incident after undo: %+v", back)
	}
	if c, _ := f.svc.Call(c2.ID); c.IncidentID != in2.ID {
		t.Fatalf("call after undo is on %s", c.IncidentID)
	}
	if a := f.do("POST", "/api/v1/incidents/"+in1.ID+"/merge/undo", f.tokens[auth.RoleSupervisor], undo); a.status != 409 {
		t.Fatalf("second undo: %d", a.status)
	}
	// A stand-alone call is merged and unmerged the same way.
	c3 := decodeAs[dispatch.Call](t, f.cti(offered("pbx.3", "+77015550001", t0.Add(150*time.Second))))
	a = f.do("POST", "/api/v1/incidents/"+in1.ID+"/merge", tok, map[string]string{"kind": "call", "id": c3.ID})
	if a.status != 200 || len(decodeAs[dispatch.Incident](t, a).CallIDs) != 2 {
		t.Fatalf("merge call: %d %s", a.status, a.body)
	}
}

func TestAnswerTimes(t *testing.T) {
	f := newFixture(t)
	t0 := time.Now().UTC().Add(-10 * time.Minute)
	for i, d := range []time.Duration{5 * time.Second, 18 * time.Second, 30 * time.Second} {
		at := t0.Add(time.Duration(i) * time.Minute)
		id := fmt.Sprintf("stat.%d", i)
		f.cti(offered(id, "+7701000000"+fmt.Sprint(i), at))
		f.cti(fmt.Sprintf(`{"type":"answered","call_id":%q,"time":%q,"operator":"op.%d"}`, id, at.Add(d).Format(time.RFC3339Nano), i))
	}
	f.cti(offered("stat.abandoned", "+77010000009", t0.Add(5*time.Minute)))
	f.cti(fmt.Sprintf(`{"type":"ended","call_id":"stat.abandoned","time":%q,"cause":"abandoned"}`, t0.Add(5*time.Minute+8*time.Second).Format(time.RFC3339Nano)))
	s := decodeAs[dispatch.AnswerStats](t, f.do("GET", "/api/v1/stats/answer-times", f.tokens[auth.RoleSupervisor], nil))
	if s.Offered != 4 || s.Answered != 3 || s.Abandoned != 1 || s.Within15 != 1 || s.Within20 != 2 || s.Share15 != 0.25 || s.Share20 != 0.5 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestCitizenReportAndWebChat(t *testing.T) {
	f := newFixture(t)
	photo := testJPEG(t)
	body, ctype := multipartReport(t, `{"text":"Горит мусорный бак во дворе","category":"fire","language":"ru","location":{"lat":43.24,"lon":76.91,"accuracy":20},"contact":{"phone":"8 701 123 45 67"}}`,
		map[string][]byte{"image/jpeg": photo})
	a := f.ingest("/api/v1/reports?channel=web", ctype, body)
	if a.status != 201 {
		t.Fatalf("report: %d %s", a.status, a.body)
	}
	rc := decodeAs[reportReceipt](t, a)
	rp, err := f.svc.Report(rc.ReportID)
	if err != nil || rp.Channel != "web" || rp.Queue != "102" || len(rp.Media) != 1 || rp.Media[0].MIME != "image/jpeg" || rp.ContactPhone != "+77011234567" {
		t.Fatalf("stored report: %+v %v", rp, err)
	}
	if st := decodeAs[map[string]any](t, f.do("GET", "/api/v1/reports/status/"+rc.Token, "", nil)); st["status"] != "received" {
		t.Fatalf("status: %v", st)
	}
	// A noise complaint triages to 1402.
	a = f.ingest("/api/v1/reports", "application/json", []byte(`{"text":"Соседи шумят, громкая музыка после полуночи","language":"ru","location":{"lat":43.2,"lon":76.9}}`))
	if a.status != 201 {
		t.Fatalf("json report: %d %s", a.status, a.body)
	}
	if rp, _ := f.svc.Report(decodeAs[reportReceipt](t, a).ReportID); rp.Queue != "1402" || rp.Category != "noise" {
		t.Fatalf("noise report: %+v", rp)
	}
	// Web chat: same dialogue, a random session id held by the browser.
	session := "Yk3v9Qm2LxP0aB7cD4eF1g"
	turn := func(in map[string]any) chatAnswer {
		in["session"] = session
		a := f.ingest("/api/v1/chat", "application/json", mustJSON(in))
		if a.status != 200 {
			t.Fatalf("chat %v: %d %s", in, a.status, a.body)
		}
		return decodeAs[chatAnswer](t, a)
	}
	turn(map[string]any{"text": "hello"})
	turn(map[string]any{"text": "English"})
	turn(map[string]any{"text": "A car was stolen from the parking lot on Abay avenue"})
	turn(map[string]any{"location": map[string]float64{"lat": 43.238, "lon": 76.945}})
	turn(map[string]any{"text": "Skip"})
	r := turn(map[string]any{"text": "Send"})
	if r.Receipt == nil || r.Receipt.ReportID == "" {
		t.Fatalf("web chat gave no receipt: %+v", r)
	}
	if rp, _ := f.svc.Report(r.Receipt.ReportID); rp.Channel != "webchat" || rp.Category != "theft" || rp.Location == nil {
		t.Fatalf("web chat report: %+v", rp)
	}
	if a := f.ingest("/api/v1/chat", "application/json", []byte(`{"session":"short","text":"hi"}`)); a.status != 422 {
		t.Fatalf("short session id: %d", a.status)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func multipartReport(t *testing.T, report string, media map[string][]byte) ([]byte, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="report"`)
	h.Set("Content-Type", "application/json")
	w, _ := mw.CreatePart(h)
	io.WriteString(w, report)
	for ct, data := range media {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="media"; filename="f"`)
		h.Set("Content-Type", ct)
		w, _ := mw.CreatePart(h)
		w.Write(data)
	}
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// logBuffer captures the server's log for one test.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func blobCount(t *testing.T, dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// Must show: bad input is rejected with a clear error and logged, and
// nothing is stored; rate limits answer 429.
func TestIntakeBadInputStoresNothing(t *testing.T) {
	logs := &logBuffer{}
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)
	f := newFixture(t)
	mediaDir := f.srv.in.cfg.MediaDir
	now := time.Now().UTC()
	f.cti(offered("known.1", "+77019998877", now))
	photo := testJPEG(t)
	// A Windows executable sent as a video, after a good photo: the photo
	// stored first must be removed again.
	disguised := append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8"), make([]byte, 600)...)
	html := []byte("<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>")
	big := append(append([]byte{}, photo...), make([]byte, 16<<20)...)
	goodReport := `{"text":"Драка у магазина","language":"ru","location":{"lat":43.2,"lon":76.9}}`
	badAML := amlBody("+77019998877", 43.2, 76.9, 10, now)
	badAML[len(badAML)-1] ^= 1

	before, blobsBefore := f.svc.Applied(), blobCount(t, mediaDir)
	cases := []struct {
		name, path, ctype string
		body              []byte
		hdr               []string
		status            int
		code              string
	}{
		{"wrong HMAC", "/ingest/aml", "application/x-www-form-urlencoded", badAML, nil, 401, "bad_hmac"},
		{"unsigned AML", "/ingest/aml", "application/x-www-form-urlencoded", []byte("v=1&location_latitude=43.2&location_longitude=76.9&location_time=1764091440123&location_accuracy=3&device_number=%2B77019998877"), nil, 401, "bad_hmac"},
		{"wrong secret token", "/ingest/telegram", "application/json", []byte(`{"update_id":1,"message":{"message_id":1,"chat":{"id":5,"type":"private"},"date":1764091440,"text":"hi"}}`), []string{"X-Telegram-Bot-Api-Secret-Token", "guess"}, 401, "bad_secret_token"},
		{"no secret token", "/ingest/telegram", "application/json", []byte(`{"update_id":1}`), nil, 401, "bad_secret_token"},
		{"malformed update", "/ingest/telegram", "application/json", []byte(`{"update_id":"x"`), []string{"X-Telegram-Bot-Api-Secret-Token", testTGSecret}, 400, "malformed"},
		{"wrong PBX token", "/ingest/cti", "application/json", []byte(offered("x.1", "+77010000000", now)), []string{"Authorization", "Bearer nope"}, 401, "bad_token"},
		{"unknown call", "/ingest/cti", "application/json", []byte(`{"type":"answered","call_id":"never.offered","time":"` + now.Format(time.RFC3339) + `","operator":"op.1"}`), []string{"Authorization", "Bearer " + testCTIToken}, 409, "unknown_call"},
		{"answered twice", "/ingest/cti", "application/json", nil, []string{"Authorization", "Bearer " + testCTIToken}, 409, "transition_not_allowed"},
		{"malformed CTI", "/ingest/cti", "application/json", []byte(`{"type":"offered","call_id":"x.2","time":"yesterday"}`), []string{"Authorization", "Bearer " + testCTIToken}, 400, "malformed"},
		{"malformed SMS", "/ingest/aml-sms", "application/json", []byte(`{"from":"+77019998877","text":"A\"ML=1;lt=+43.23812;lg=;rd=50"}`), []string{"Authorization", "Bearer " + testSMSToken}, 422, "invalid"},
		{"not an AML SMS", "/ingest/aml-sms", "application/json", []byte(`{"from":"+77019998877","text":"Ваш баланс 150 тг"}`), []string{"Authorization", "Bearer " + testSMSToken}, 400, "malformed"},
		{"wrong SMS token", "/ingest/aml-sms", "application/json", []byte(`{"from":"+77019998877","text":"x"}`), []string{"Authorization", "Bearer " + testCTIToken}, 401, "bad_token"},
		{"disguised media", "/api/v1/reports", "", nil, nil, 415, "disguised_media"},
		{"html as photo", "/api/v1/reports", "", nil, nil, 415, "disguised_media"},
		{"oversize photo", "/api/v1/reports", "", nil, nil, 413, "too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body, ctype := c.body, c.ctype
			switch c.name {
			case "answered twice":
				body = []byte(`{"type":"answered","call_id":"known.1","time":"` + now.Add(time.Second).Format(time.RFC3339) + `","operator":"op.1"}`)
				if a := f.ingest(c.path, "application/json", body, c.hdr...); a.status != 200 {
					t.Fatalf("first answer: %d %s", a.status, a.body)
				}
				// A PBX retry of the same event is fine; another answer is not.
				if a := f.ingest(c.path, "application/json", body, c.hdr...); a.status != 200 {
					t.Fatalf("retried answer: %d %s", a.status, a.body)
				}
				before++
				body = []byte(`{"type":"answered","call_id":"known.1","time":"` + now.Add(2*time.Second).Format(time.RFC3339) + `","operator":"op.2"}`)
			case "disguised media":
				body, ctype = multipartReport(t, goodReport, map[string][]byte{"image/jpeg": photo, "video/mp4": disguised})
			case "html as photo":
				body, ctype = multipartReport(t, goodReport, map[string][]byte{"image/jpeg": html})
			case "oversize photo":
				body, ctype = multipartReport(t, goodReport, map[string][]byte{"image/jpeg": big})
			}
			a := f.ingest(c.path, ctype, body, c.hdr...)
			if a.status != c.status || (c.code != "" && a.err.Code != c.code) {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, c.status, c.code)
			}
			if strings.Contains(a.err.Message, testAMLKey) || strings.Contains(a.err.Message, testTGSecret) {
				t.Fatalf("answer leaks a secret: %s", a.body)
			}
		})
	}
	if got := f.svc.Applied(); got != before {
		t.Fatalf("rejected requests appended %d records", got-before)
	}
	if n := blobCount(t, mediaDir); n != blobsBefore {
		t.Fatalf("rejected uploads left %d files in the media store", n-blobsBefore)
	}
	if f.srv.in.matcher.Pending() != 0 {
		t.Fatal("a rejected AML fix is waiting for a call")
	}
	// An AML message that authenticates but cannot be used is answered
	// 200 "discarded" (ELS guidance) and logged; nothing is stored.
	m := hmac.New(sha1.New, []byte(testAMLKey))
	junk := "v=1&location_latitude=95&location_longitude=76.9&location_time=1764091440123&location_accuracy=3&device_number=%2B77019998877"
	m.Write([]byte(junk))
	a := f.ingest("/ingest/aml", "application/x-www-form-urlencoded", []byte(junk+"&hmac="+hex.EncodeToString(m.Sum(nil))))
	if a.status != 200 || a.err.Code != "discarded" || !strings.Contains(a.err.Message, "latitude") {
		t.Fatalf("unusable AML: %d %s", a.status, a.body)
	}
	if f.svc.Applied() != before || f.srv.in.matcher.Pending() != 0 {
		t.Fatal("an unusable AML message was stored")
	}
	out := logs.String()
	for _, c := range cases {
		if c.code != "" && !strings.Contains(out, "code="+c.code) {
			t.Errorf("rejection %s (%s) not logged", c.name, c.code)
		}
	}
	for _, secret := range []string{testAMLKey, testTGSecret, testCTIToken, testSMSToken, testBotToken} {
		if strings.Contains(out, secret) {
			t.Fatalf("a secret reached the log")
		}
	}
	// Citizen rate limit: the fixture allows a burst of testReportCap.
	var last answer
	for i := 0; i < testReportCap+1; i++ {
		last = f.ingest("/api/v1/reports", "application/json", []byte(goodReport))
	}
	if last.status != 429 || last.err.Code != "rate_limited" {
		t.Fatalf("report flood: %d %s", last.status, last.body)
	}
}
