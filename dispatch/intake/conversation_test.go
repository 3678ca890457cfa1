package intake

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func turn(t *testing.T, c *Conversations, key string, in ChatInput) ChatReply {
	t.Helper()
	r, err := c.Handle(key, in)
	if err != nil {
		t.Fatalf("Handle(%+v): %v", in, err)
	}
	return r
}

func TestWebChatKazakhWithAddressAndSkip(t *testing.T) {
	clk := &fakeClock{time.Date(2026, 11, 25, 17, 30, 0, 0, time.UTC)}
	c, err := NewConversations(ConversationConfig{Channel: ChannelWebChat, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	k := "web:3f1c9a"
	if r := turn(t, c, k, ChatInput{Text: "сәлем"}); r.Text != chooseLangText || len(r.Buttons[0]) != 3 {
		t.Fatalf("first turn: %+v", r)
	}
	if r := turn(t, c, k, ChatInput{Text: "Қазақша"}); !strings.HasPrefix(r.Text, "Не болды?") || r.Language != LangKK {
		t.Fatalf("kk ask what: %+v", r)
	}
	if r := turn(t, c, k, ChatInput{Text: "ой"}); !strings.HasPrefix(r.Text, "Оқиғаны толығырақ") {
		t.Fatalf("too short: %+v", r)
	}
	r := turn(t, c, k, ChatInput{Text: "Көршінің пәтерінде түнгі сағат екіде қатты музыка ойнап тұр"})
	if !strings.HasPrefix(r.Text, "Оқиға қай жерде болды?") || !r.Buttons[0][0].RequestLocation {
		t.Fatalf("kk ask where: %+v", r)
	}
	r = turn(t, c, k, ChatInput{Text: "Астана, Сарайшық көшесі 5, 3-подъезд"})
	if r.Buttons[0][0].Text != "Өткізіп жіберу" {
		t.Fatalf("kk ask media: %+v", r)
	}
	r = turn(t, c, k, ChatInput{Text: "Өткізіп жіберу"})
	if !strings.Contains(r.Text, "Қай жерде: Астана, Сарайшық көшесі 5") || !strings.Contains(r.Text, "Файлдар: жоқ") {
		t.Fatalf("kk summary: %s", r.Text)
	}
	if r = turn(t, c, k, ChatInput{Text: "иә"}); r.Report != nil || !strings.Contains(r.Text, "Жіберу") {
		t.Fatalf("unclear confirm: %+v", r)
	}
	r = turn(t, c, k, ChatInput{Text: "Жіберу", Contact: &Contact{Phone: "8 777 123 45 67", Name: "Ерлан"}})
	rep := r.Report
	if rep == nil || rep.Language != LangKK || rep.Channel != ChannelWebChat || rep.Category != CatNoise ||
		rep.Location.HasPoint || rep.Contact.Phone != "+77771234567" || !rep.ReceivedAt.Equal(clk.t) {
		t.Fatalf("report = %+v", rep)
	}
	tr, _ := NewTriage(TriageConfig{})
	if q := tr.Queue(rep.Category); q != Queue1402 {
		t.Fatalf("noise report triaged to %s", q)
	}
}

func TestConversationCancelRestartExpiryBound(t *testing.T) {
	clk := &fakeClock{time.Date(2026, 11, 25, 17, 30, 0, 0, time.UTC)}
	c, _ := NewConversations(ConversationConfig{Channel: ChannelTelegram, MaxChats: 2, IdleTimeout: 10 * time.Minute, MaxMedia: 2, Now: clk.Now})
	turn(t, c, "tg:1", ChatInput{Text: "English"})
	turn(t, c, "tg:1", ChatInput{Text: "A car hit a cyclist on Dostyk avenue"})
	if r := turn(t, c, "tg:1", ChatInput{Text: "/cancel"}); !strings.HasPrefix(r.Text, "Report cancelled") {
		t.Fatalf("cancel: %+v", r)
	}
	if c.Active() != 0 {
		t.Fatal("cancelled dialogue held")
	}
	// /start mid-dialogue restarts.
	turn(t, c, "tg:1", ChatInput{Text: "ru"})
	if r := turn(t, c, "tg:1", ChatInput{Text: "/start"}); r.Text != chooseLangText {
		t.Fatalf("/start: %+v", r)
	}
	// Idle expiry restarts at the language step.
	turn(t, c, "tg:1", ChatInput{Text: "ru"})
	clk.Add(11 * time.Minute)
	if r := turn(t, c, "tg:1", ChatInput{Text: "Драка во дворе"}); r.Text != chooseLangText {
		t.Fatalf("after idle: %+v", r)
	}
	// Bound: a third chat evicts the least recently active.
	turn(t, c, "tg:2", ChatInput{Text: "ru"})
	clk.Add(time.Second)
	turn(t, c, "tg:1", ChatInput{Text: "ru"})
	turn(t, c, "tg:3", ChatInput{Text: "ru"})
	if c.Active() != 2 {
		t.Fatalf("active = %d; want 2", c.Active())
	}
	if r := turn(t, c, "tg:2", ChatInput{Text: "Драка во дворе"}); r.Text != chooseLangText {
		t.Fatalf("evicted chat kept state: %+v", r)
	}
	// Media limit and photo sent first.
	m := func(b byte) MediaRef {
		return MediaRef{SHA256: strings.Repeat(string("0123456789abcdef"[b]), 64), Kind: KindImage, MIME: "image/jpeg", Size: 10}
	}
	turn(t, c, "tg:3", ChatInput{Media: []MediaRef{m(1)}}) // photo before any text
	turn(t, c, "tg:3", ChatInput{Location: &ReportLocation{Lat: 51.128, Lon: 71.430, HasPoint: true}})
	if r := turn(t, c, "tg:3", ChatInput{Media: []MediaRef{m(2), m(3)}}); !strings.HasPrefix(r.Text, "Больше файлов") {
		t.Fatalf("media limit: %+v", r)
	}
	turn(t, c, "tg:3", ChatInput{Text: "Готово"})
	r := turn(t, c, "tg:3", ChatInput{Text: "Отправить"})
	if r.Report == nil || len(r.Report.Media) != 2 || r.Report.Text != "" || r.Report.Category != CatOther {
		t.Fatalf("photo-only report: %+v", r.Report)
	}
	if _, err := c.Handle("", ChatInput{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
}

func TestCatalogueComplete(t *testing.T) {
	for key := range catalogue[LangRU] {
		for _, l := range []string{LangKK, LangEN} {
			if catalogue[l][key] == "" {
				t.Errorf("%s missing %s", l, key)
			}
		}
	}
	if len(catalogue[LangKK]) != len(catalogue[LangRU]) || len(catalogue[LangEN]) != len(catalogue[LangRU]) {
		t.Error("catalogues differ in size")
	}
	if got := T(LangRU, msgStatusLink, "https://102.kz/s/abc"); !strings.HasSuffix(got, "https://102.kz/s/abc") {
		t.Errorf("status link: %s", got)
	}
}

func TestConversationLocationFirst(t *testing.T) {
	c, _ := NewConversations(ConversationConfig{Channel: ChannelTelegram})
	turn(t, c, "tg:9", ChatInput{Text: "Русский"})
	if r := turn(t, c, "tg:9", ChatInput{Location: &ReportLocation{Lat: 51.1694, Lon: 71.4491, HasPoint: true}}); !strings.HasPrefix(r.Text, "Опишите") {
		t.Fatalf("location before text: %+v", r)
	}
	if r := turn(t, c, "tg:9", ChatInput{Text: "Пьяный водитель едет по встречке на Кабанбай батыра"}); !strings.Contains(r.Text, "фото") {
		t.Fatalf("where step not skipped: %+v", r)
	}
	turn(t, c, "tg:9", ChatInput{Text: "Пропустить"})
	rep := turn(t, c, "tg:9", ChatInput{Text: "Отправить"}).Report
	if rep == nil || rep.Location == nil || rep.Location.Lat != 51.1694 || rep.Category != CatDrunkDriver {
		t.Fatalf("report = %+v", rep)
	}
}
