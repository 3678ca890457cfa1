package intake

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const appReport = `{"text":"На перекрёстке Абая и Манаса столкнулись две машины, водитель без сознания",
 "category":"traffic_accident_injury",
 "location":{"lat":43.24015,"lon":76.91254,"accuracy":8,"address":"Абая — Манаса"},
 "contact":{"phone":"+7 701 555 12 12","name":"Данияр"},
 "language":"ru",
 "media":[{"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","size":184220,"mime":"image/jpeg","kind":"image"}]}`

func TestDecodeReport(t *testing.T) {
	r, err := DecodeReport(strings.NewReader(appReport), ChannelApp)
	if err != nil {
		t.Fatal(err)
	}
	if r.Contact.Phone != "+77015551212" || !r.Location.HasPoint || r.Category != CatAccidentInjury || len(r.Media) != 1 {
		t.Fatalf("report = %+v", r)
	}
	tr, _ := NewTriage(TriageConfig{})
	if tr.Queue(r.Category) != Queue102 {
		t.Fatal("injury accident not 102")
	}
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"unknown field", `{"text":"x","language":"ru","internal_note":"y"}`, ErrMalformed},
		{"oversize", `{"text":"` + strings.Repeat("a", MaxReportJSONBytes) + `"}`, ErrTooLarge},
		{"no language", `{"text":"Шум у соседей"}`, ErrInvalid},
		{"language de", `{"text":"Lärm","language":"de"}`, ErrInvalid},
		{"empty", `{"language":"kk"}`, ErrInvalid},
		{"lat range", `{"text":"x y z","language":"en","location":{"lat":95,"lon":1}}`, ErrInvalid},
		{"location empty", `{"text":"x y z","language":"en","location":{"has_point":false}}`, ErrInvalid},
		{"bad phone", `{"text":"x y z","language":"en","contact":{"phone":"call me"}}`, ErrInvalid},
		{"bad media ref", `{"text":"x y z","language":"en","media":[{"sha256":"../../etc/passwd"}]}`, ErrInvalid},
		{"bad category", `{"text":"x y z","language":"en","category":"a b"}`, ErrInvalid},
		{"text too long", `{"language":"en","text":"` + strings.Repeat("я", 4001) + `"}`, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeReport(strings.NewReader(tc.body), ChannelWeb); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestStatusToken(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		tok, err := NewStatusToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != 43 || seen[tok] || strings.ContainsAny(tok, "+/=") {
			t.Fatalf("token %q", tok)
		}
		seen[tok] = true
		h, err := StatusTokenHash(tok)
		if err != nil || len(h) != 64 || strings.Contains(h, tok) {
			t.Fatalf("hash %q %v", h, err)
		}
	}
	if _, err := StatusTokenHash("short"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bad token: %v", err)
	}
	// The public view has nothing but status and time.
	v := PublicView{Status: StatusInProgress, UpdatedAt: time.Date(2026, 11, 25, 17, 40, 0, 0, time.UTC)}
	if v.Status != "in_progress" {
		t.Fatal(v)
	}
}

func TestLimiter(t *testing.T) {
	clk := &fakeClock{time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)}
	l, err := NewLimiter(LimiterConfig{Rate: 0.5, Burst: 3, MaxClients: 2, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow("198.51.100.7"); !ok {
			t.Fatalf("request %d within burst refused", i)
		}
	}
	ok, wait := l.Allow("198.51.100.7")
	if ok || wait != 2*time.Second {
		t.Fatalf("4th: ok=%v retry-after=%v; want refused, 2s", ok, wait)
	}
	if ok, _ := l.Allow("203.0.113.9"); !ok {
		t.Fatal("other client limited")
	}
	clk.Add(2 * time.Second)
	if ok, _ := l.Allow("198.51.100.7"); !ok {
		t.Fatal("not refilled after Retry-After")
	}
	if secs, err := l.Check("198.51.100.7"); !errors.Is(err, ErrRateLimited) || secs != 2 {
		t.Fatalf("Check after refill+1: %d %v", secs, err)
	}
	l.Allow("192.0.2.1") // third client evicts the least recent (203.0.113.9)
	if l.Clients() != 2 {
		t.Fatalf("clients = %d", l.Clients())
	}
	if _, err := NewLimiter(LimiterConfig{Rate: -1}); !errors.Is(err, ErrConfig) {
		t.Fatal("negative rate accepted")
	}
}

func TestTriage(t *testing.T) {
	tr, err := NewTriage(TriageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for cat, q := range map[string]string{
		CatViolence: Queue102, CatRobbery: Queue102, CatFire: Queue102, CatAccidentInjury: Queue102,
		CatNoise: Queue1402, CatLostDocuments: Queue1402, CatInformation: Queue1402, CatQuestion: Queue1402,
		"unheard_of": Queue102,
	} {
		if got := tr.Queue(cat); got != q {
			t.Errorf("Queue(%s) = %s; want %s", cat, got, q)
		}
	}
	custom, err := NewTriage(TriageConfig{Queues: map[string]string{"stray_dogs": Queue1402}, Default: Queue1402})
	if err != nil || custom.Queue("stray_dogs") != Queue1402 || custom.Queue(CatFire) != Queue1402 || custom.Known(CatFire) {
		t.Fatal("custom table")
	}
	if _, err := NewTriage(TriageConfig{Queues: map[string]string{"x": "112"}}); !errors.Is(err, ErrConfig) {
		t.Fatal("bad queue accepted")
	}
	for text, cat := range map[string]string{
		"Двое мужчин избивают парня":        CatViolence,
		"Пышақпен қорқытып жатыр":           CatWeapon,
		"Үйде өрт шықты, түтін көп":         CatFire,
		"Меня ограбили возле банкомата":     CatRobbery,
		"ДТП на Аль-Фараби, пострадавший":   CatAccidentInjury,
		"Небольшое ДТП, никто не пострадал": CatAccident,
		"Соседи шумят после 23:00":          CatNoise,
		"Потерял паспорт, куда обращаться?": CatLostDocuments,
		"Подскажите график работы ЦОНа":     CatQuestion,
		"Someone stole my bike":             CatTheft,
		"Күн ашық":                          CatOther,
	} {
		if got := CategoryFromText(text); got != cat {
			t.Errorf("CategoryFromText(%q) = %s; want %s", text, got, cat)
		}
	}
}
