package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/dispatch/journal/filejournal"
	"github.com/kuzet/kuzet/internal/auth"
)

// BenchmarkIntakeQueue measures GET /api/v1/intake on a busy centre: n
// ringing or active calls, n new reports and n/2 open incidents, every row
// scored for duplicates against all of them (n = 50, 200).
func BenchmarkIntakeQueue(b *testing.B) {
	for _, n := range []int{50, 200} {
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			f := newIntakeBench(b)
			ctx := context.Background()
			m := dispatch.Meta{Actor: dispatch.Actor{ID: "pbx"}}
			now := time.Now().UTC()
			texts := []string{"драка у магазина", "горит машина во дворе", "украли телефон в автобусе", "шумят соседи", "ДТП на перекрёстке"}
			for i := 0; i < n; i++ {
				lat, lon := 43.2+float64(i%40)*0.001, 76.9+float64(i/40)*0.001
				c, err := f.svc.PBXOffered(ctx, m, dispatch.PBXOffer{PBXCallID: fmt.Sprint("b", i), CallerNumber: fmt.Sprintf("+7701%07d", i), Queue: "102", At: now.Add(-time.Duration(i) * time.Second)})
				if err != nil {
					b.Fatal(err)
				}
				f.svc.AttachAML(ctx, m, c.ID, dispatch.AMLLocation{Location: dispatch.Location{Lat: lat, Lon: lon, Accuracy: 20}, Transport: "https", LocationTime: now})
				f.svc.ReceiveReport(ctx, m, dispatch.NewReport{Channel: "app", Text: texts[i%len(texts)], Queue: "102", Language: "ru",
					Location: &dispatch.Location{Lat: lat + 0.0005, Lon: lon}, StatusHash: fmt.Sprintf("%064x", i+1)})
				if i%2 == 0 {
					f.svc.CreateIncident(ctx, m, dispatch.NewIncident{Type: "ASSAULT", Location: dispatch.Location{Lat: lat, Lon: lon}, Narrative: texts[i%len(texts)]})
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req, _ := http.NewRequest("GET", f.url+"/api/v1/intake", nil)
				req.Header.Set("Authorization", "Bearer "+f.tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(body), `"duplicates"`) {
					b.Fatalf("intake: %d", resp.StatusCode)
				}
			}
		})
	}
}

// newIntakeBench is a server with only what the intake queue needs: a
// journal, the dispatch service, a call-taker session and the intake doors.
func newIntakeBench(b *testing.B) *intakeBench {
	dir := b.TempDir()
	j, err := filejournal.Open(filejournal.Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := dispatch.New(dispatch.Config{Journal: j, TimerInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	store, err := auth.OpenFileStore(dir)
	if err != nil {
		b.Fatal(err)
	}
	authn, _ := auth.New(auth.Config{Store: store})
	srv, err := New(Config{Dispatch: svc, Auth: authn, Intake: intakeFixtureConfig(b, dir)})
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(func() { hs.Close(); srv.Drain(context.Background()); svc.Close(); j.Close() })
	ctx := context.Background()
	if err := store.PutUser(ctx, auth.User{Username: "calltaker1", Role: auth.RoleCallTaker, PasswordHash: "unused", CreatedAt: time.Now()}, true); err != nil {
		b.Fatal(err)
	}
	tok, hash := auth.NewToken()
	if err := store.PutSession(ctx, auth.Session{TokenHash: hash, Username: "calltaker1", Expires: time.Now().Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	return &intakeBench{svc: svc, url: hs.URL, tok: tok}
}

type intakeBench struct {
	svc *dispatch.Service
	url string
	tok string
}
