package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testBotToken = "7012345678:AAE-kuzet_test_token_QWERTYUIOPasdfgh"

// botAPI is a local server speaking the Telegram Bot API's JSON: the real
// api.telegram.org cannot be reached from tests.
type botAPI struct {
	t     *testing.T
	mu    sync.Mutex
	sent  []map[string]any
	files map[string][]byte // file_path → bytes
	ids   map[string]string // file_id → file_path
}

func newBotAPI(t *testing.T) (*botAPI, *httptest.Server) {
	api := &botAPI{t: t, files: map[string][]byte{}, ids: map[string]string{}}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return api, srv
}

func (a *botAPI) fail(w http.ResponseWriter, code int, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"ok":false,"error_code":%d,"description":%q}`, code, desc)
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
	method, ok := strings.CutPrefix(r.URL.Path, "/bot"+testBotToken+"/")
	if !ok {
		a.fail(w, 401, "Unauthorized")
		return
	}
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		a.fail(w, 400, "Bad Request: can't parse JSON")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch method {
	case "sendMessage":
		if req["text"] == "" || req["chat_id"] == nil {
			a.fail(w, 400, "Bad Request: message text is empty")
			return
		}
		a.mu.Lock()
		a.sent = append(a.sent, req)
		a.mu.Unlock()
		fmt.Fprintf(w, `{"ok":true,"result":{"message_id":%d,"date":%d,"chat":{"id":%v,"type":"private"},"text":%q}}`,
			len(a.sent)+100, time.Now().Unix(), req["chat_id"], req["text"])
	case "getFile":
		id, _ := req["file_id"].(string)
		a.mu.Lock()
		p, ok := a.ids[id]
		size := len(a.files[p])
		a.mu.Unlock()
		if !ok {
			a.fail(w, 400, "Bad Request: invalid file_id")
			return
		}
		fmt.Fprintf(w, `{"ok":true,"result":{"file_id":%q,"file_unique_id":"u%s","file_size":%d,"file_path":%q}}`, id, id, size, p)
	default:
		a.fail(w, 404, "Not Found")
	}
}

func (a *botAPI) addFile(id, path string, b []byte) {
	a.mu.Lock()
	a.files[path], a.ids[id] = b, path
	a.mu.Unlock()
}

func (a *botAPI) last() map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sent[len(a.sent)-1]
}

type tgHarness struct {
	api   *botAPI
	ch    *TelegramChannel
	store *BlobStore
	dir   string
	next  int64
}

func newTGHarness(t *testing.T) *tgHarness {
	api, srv := newBotAPI(t)
	bot, err := NewBot(BotConfig{Token: testBotToken, BaseURL: srv.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store, err := NewBlobStore(BlobStoreConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	conv, err := NewConversations(ConversationConfig{Channel: ChannelTelegram})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := NewTelegramChannel(TelegramChannelConfig{Bot: bot, Store: store, Conversations: conv})
	if err != nil {
		t.Fatal(err)
	}
	return &tgHarness{api: api, ch: ch, store: store, dir: dir, next: 900000001}
}

// send runs one webhook body through the same path the HTTP layer uses:
// secret check, decode, handle.
func (h *tgHarness) send(t *testing.T, msg string) (*Report, map[string]any) {
	t.Helper()
	h.next++
	body := fmt.Sprintf(`{"update_id":%d,"message":{"message_id":%d,"from":{"id":482910337,"is_bot":false,"first_name":"Айгерим","language_code":"ru"},"chat":{"id":482910337,"first_name":"Айгерим","type":"private"},"date":1764091440,%s}}`, h.next, h.next-900000000, msg)
	if err := CheckSecretToken("kuzet_webhook_S3cret-x", "kuzet_webhook_S3cret-x"); err != nil {
		t.Fatal(err)
	}
	u, err := DecodeTelegramUpdate(strings.NewReader(body))
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	rep, err := h.ch.HandleUpdate(context.Background(), u)
	if err != nil {
		t.Fatalf("HandleUpdate: %v", err)
	}
	return rep, h.api.last()
}

func markupButtons(m map[string]any) []map[string]any {
	var out []map[string]any
	rm, _ := m["reply_markup"].(map[string]any)
	rows, _ := rm["keyboard"].([]any)
	for _, row := range rows {
		for _, b := range row.([]any) {
			out = append(out, b.(map[string]any))
		}
	}
	return out
}

func TestTelegramConversationRussianWithLocationAndPhoto(t *testing.T) {
	h := newTGHarness(t)
	photo := testJPEG(t, 320, 240)
	h.api.addFile("AgACAgIAAxkBAAIBQ2VmX3Lg", "photos/file_17.jpg", photo)

	_, out := h.send(t, `"text":"/start","entities":[{"offset":0,"length":6,"type":"bot_command"}]`)
	if b := markupButtons(out); len(b) != 3 || b[1]["text"] != "Русский" {
		t.Fatalf("language keyboard: %v", out)
	}
	_, out = h.send(t, `"text":"Русский"`)
	if !strings.HasPrefix(out["text"].(string), "Что случилось?") {
		t.Fatalf("ask what: %v", out["text"])
	}
	_, out = h.send(t, `"text":"Двое мужчин избивают парня у входа в ТРЦ, он лежит на земле"`)
	b := markupButtons(out)
	if !strings.HasPrefix(out["text"].(string), "Где это произошло?") || len(b) != 1 || b[0]["request_location"] != true {
		t.Fatalf("ask where with location button: %v", out)
	}
	_, out = h.send(t, `"location":{"latitude":43.23812,"longitude":76.94512,"horizontal_accuracy":12.5}`)
	if !strings.Contains(out["text"].(string), "фото, видео") || markupButtons(out)[0]["text"] != "Пропустить" {
		t.Fatalf("ask media: %v", out)
	}
	_, out = h.send(t, `"photo":[{"file_id":"AgACAgIAAxkBAAIBQ2VmX3Lg-s","file_unique_id":"AQADs","file_size":1520,"width":90,"height":68},{"file_id":"AgACAgIAAxkBAAIBQ2VmX3Lg","file_unique_id":"AQADm","file_size":23011,"width":320,"height":240}],"caption":"вот они"`)
	if !strings.HasPrefix(out["text"].(string), "Файл получен (1)") {
		t.Fatalf("media received: %v", out["text"])
	}
	_, out = h.send(t, `"text":"Готово"`)
	s := out["text"].(string)
	if !strings.Contains(s, "Что случилось: Двое мужчин") || !strings.Contains(s, "точка на карте (43.23812, 76.94512)") || !strings.Contains(s, "Файлы: 1") {
		t.Fatalf("summary: %s", s)
	}
	rep, out := h.send(t, `"text":"Отправить"`)
	if rep == nil {
		t.Fatal("no report after confirm")
	}
	if !strings.HasPrefix(out["text"].(string), "Спасибо!") {
		t.Fatalf("sent: %v", out["text"])
	}
	if rep.Channel != ChannelTelegram || rep.Language != LangRU || rep.Category != CatViolence ||
		rep.ClientKey != "tg:482910337" || rep.Location == nil || !rep.Location.HasPoint ||
		rep.Location.Lat != 43.23812 || rep.Location.Accuracy != 12.5 || len(rep.Media) != 1 {
		t.Fatalf("report = %+v", rep)
	}
	f, err := h.store.Open(rep.Media[0].SHA256)
	if err != nil {
		t.Fatalf("photo not in store: %v", err)
	}
	st, _ := f.Stat()
	f.Close()
	if st.Size() != int64(len(photo)) || rep.Media[0].MIME != "image/jpeg" {
		t.Fatalf("stored %d bytes %s; want %d image/jpeg", st.Size(), rep.Media[0].MIME, len(photo))
	}
	if h.ch.conv.Active() != 0 {
		t.Fatal("finished dialogue still held")
	}
}

func TestTelegramRedeliveryIgnored(t *testing.T) {
	h := newTGHarness(t)
	body := `{"update_id":7001,"message":{"message_id":1,"chat":{"id":55,"type":"private"},"date":1764091440,"text":"Русский"}}`
	for i := 0; i < 3; i++ {
		u, err := DecodeTelegramUpdate(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.ch.HandleUpdate(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	h.api.mu.Lock()
	n := len(h.api.sent)
	h.api.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d replies to one update delivered 3 times; want 1", n)
	}
}

func TestTelegramDisguisedMediaNotStored(t *testing.T) {
	h := newTGHarness(t)
	h.api.addFile("BQACAgIAAxkBAAIBRGVmX4", "documents/file_3.jpg", []byte("MZ\x90\x00\x03\x00\x00\x00 This program cannot be run in DOS mode."))
	h.send(t, `"text":"/start"`)
	h.send(t, `"text":"Русский"`)
	h.send(t, `"text":"Украли телефон в автобусе №32"`)
	h.send(t, `"text":"Остановка Абая — Байтурсынова"`)
	_, out := h.send(t, `"document":{"file_id":"BQACAgIAAxkBAAIBRGVmX4","file_unique_id":"AgADx","file_name":"photo.jpg","mime_type":"image/jpeg","file_size":44}`)
	if !strings.HasPrefix(out["text"].(string), "Этот файл не принят") {
		t.Fatalf("reply to disguised file: %v", out["text"])
	}
	if n := countFiles(t, h.dir); n != 0 {
		t.Fatalf("%d files stored after disguised upload", n)
	}
	h.send(t, `"text":"Готово"`)
	rep, _ := h.send(t, `"text":"Отправить"`)
	if rep == nil || len(rep.Media) != 0 || rep.Location.Address != "Остановка Абая — Байтурсынова" || rep.Category != CatTheft {
		t.Fatalf("report = %+v", rep)
	}
}

func TestTelegramSecretToken(t *testing.T) {
	if err := CheckSecretToken("kuzet_webhook_S3cret-y", "kuzet_webhook_S3cret-x"); !errors.Is(err, ErrBadSecretToken) {
		t.Fatalf("wrong token: %v", err)
	}
	if err := CheckSecretToken("", "kuzet_webhook_S3cret-x"); !errors.Is(err, ErrBadSecretToken) {
		t.Fatalf("missing token: %v", err)
	}
	if err := CheckSecretToken("", ""); !errors.Is(err, ErrBadSecretToken) {
		t.Fatalf("unconfigured secret must fail closed: %v", err)
	}
	if !ValidSecretToken("kuzet_webhook_S3cret-x") || ValidSecretToken("has space") || ValidSecretToken("") {
		t.Fatal("ValidSecretToken")
	}
}

func TestBotErrorsRedactToken(t *testing.T) {
	_, srv := newBotAPI(t)
	// API error shape passes through without the token.
	bad, _ := NewBot(BotConfig{Token: "123:wrong-token", BaseURL: srv.URL})
	err := bad.SendMessage(context.Background(), 1, "x", nil)
	if !errors.Is(err, ErrBotAPI) || !strings.Contains(err.Error(), "401 Unauthorized") || strings.Contains(err.Error(), "wrong-token") {
		t.Fatalf("api error: %v", err)
	}
	good, _ := NewBot(BotConfig{Token: testBotToken, BaseURL: srv.URL})
	if _, err := good.GetFile(context.Background(), "nope"); !errors.Is(err, ErrBotAPI) || !strings.Contains(err.Error(), "invalid file_id") {
		t.Fatalf("getFile error: %v", err)
	}
	// Transport errors carry the URL, hence the token: it must be redacted.
	srv2 := httptest.NewServer(http.NotFoundHandler())
	url := srv2.URL
	srv2.Close()
	down, _ := NewBot(BotConfig{Token: testBotToken, BaseURL: url, Timeout: time.Second})
	err = down.SendMessage(context.Background(), 1, "x", nil)
	if err == nil || strings.Contains(err.Error(), testBotToken) || !strings.Contains(err.Error(), "<token>") {
		t.Fatalf("transport error not redacted: %v", err)
	}
	if _, err := NewBot(BotConfig{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("no token: %v", err)
	}
}

func TestDecodeTelegramUpdateRejects(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"not json", `update_id=1`, ErrMalformed},
		{"no update id", `{"message":{"message_id":1,"chat":{"id":5,"type":"private"},"date":1,"text":"hi"}}`, ErrInvalid},
		{"no chat", `{"update_id":1,"message":{"message_id":1,"date":1,"text":"hi"}}`, ErrInvalid},
		{"location range", `{"update_id":1,"message":{"message_id":1,"chat":{"id":5,"type":"private"},"date":1,"location":{"latitude":91,"longitude":0}}}`, ErrInvalid},
		{"empty file id", `{"update_id":1,"message":{"message_id":1,"chat":{"id":5,"type":"private"},"date":1,"voice":{"file_id":"","file_unique_id":"x","duration":3}}}`, ErrInvalid},
		{"too large", `{"update_id":1,"message":{"message_id":1,"chat":{"id":5,"type":"private"},"date":1,"text":"` + strings.Repeat("я", MaxTelegramUpdateBytes) + `"}}`, ErrTooLarge},
		{"trailing", `{"update_id":1}{"update_id":2}`, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeTelegramUpdate(strings.NewReader(tc.body)); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
		})
	}
}

var tgSamples = []string{
	`{"update_id":900000002,"message":{"message_id":2,"from":{"id":482910337,"is_bot":false,"first_name":"Айгерим","language_code":"ru"},"chat":{"id":482910337,"type":"private"},"date":1764091440,"text":"/start","entities":[{"offset":0,"length":6,"type":"bot_command"}]}}`,
	`{"update_id":900000003,"message":{"message_id":3,"chat":{"id":482910337,"type":"private"},"date":1764091440,"location":{"latitude":43.23812,"longitude":76.94512,"horizontal_accuracy":12.5}}}`,
	`{"update_id":900000004,"message":{"message_id":4,"chat":{"id":482910337,"type":"private"},"date":1764091440,"photo":[{"file_id":"AgAC-s","file_unique_id":"AQADs","file_size":1520,"width":90,"height":68},{"file_id":"AgAC","file_unique_id":"AQADm","file_size":23011,"width":320,"height":240}]}}`,
	`{"update_id":900000005,"message":{"message_id":5,"chat":{"id":482910337,"type":"private"},"date":1764091440,"voice":{"file_id":"AwACAgIAAxkBAAIBR","file_unique_id":"AgADv","duration":7,"mime_type":"audio/ogg","file_size":18234}}}`,
	`{"update_id":900000006,"message":{"message_id":6,"chat":{"id":482910337,"type":"private"},"date":1764091440,"video_note":{"file_id":"DQACAgIAAxkBAAIBS","file_unique_id":"AgADn","length":240,"duration":9,"file_size":402113}}}`,
	`{"update_id":900000007,"message":{"message_id":7,"from":{"id":482910337,"is_bot":false,"first_name":"Айгерим"},"chat":{"id":482910337,"type":"private"},"date":1764091440,"contact":{"phone_number":"77011234567","first_name":"Айгерим","user_id":482910337}}}`,
	`{"update_id":900000008,"callback_query":{"id":"4382","from":{"id":482910337,"is_bot":false,"first_name":"Айгерим"},"data":"lang:ru"}}`,
}

func TestDecodeTelegramSamples(t *testing.T) {
	for _, s := range tgSamples {
		if _, err := DecodeTelegramUpdate(strings.NewReader(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

func FuzzDecodeTelegramUpdate(f *testing.F) {
	for _, s := range tgSamples {
		f.Add(s)
	}
	f.Add(`{}`)
	f.Add(`{"update_id":1,"message":null}`)
	conv, _ := NewConversations(ConversationConfig{Channel: ChannelTelegram, MaxChats: 8})
	f.Fuzz(func(t *testing.T, s string) {
		u, err := DecodeTelegramUpdate(strings.NewReader(s))
		if err != nil || u.Message == nil {
			return
		}
		m := u.Message
		in := ChatInput{Text: m.Text}
		if l := m.Location; l != nil {
			in.Location = &ReportLocation{Lat: l.Latitude, Lon: l.Longitude, HasPoint: true}
		}
		conv.Handle(fmt.Sprint("tg:", m.Chat.ID), in)
		_ = m.files()
	})
}
