package web

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// devtools drives one headless Chromium page over the DevTools protocol
// (Runtime.evaluate), for pages a test has to use, not only load.
type devtools struct {
	t    *testing.T
	conn *websocket.Conn
	id   int
}

func openDevtools(t *testing.T, url string) *devtools {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (Debian: apt-get install chromium; scripts/test installs it): %v", chromiumPath, err)
	}
	cmd := exec.Command(chromiumPath, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--remote-debugging-port=0", "--remote-allow-origins=*", "--user-data-dir="+t.TempDir(), url)
	stderr, _ := cmd.StderrPipe()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if _, ws, ok := strings.Cut(sc.Text(), "DevTools listening on "); ok {
				found <- ws
			}
		}
	}()
	var browserWS string
	select {
	case browserWS = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("Chromium did not open its DevTools port")
	}
	host := strings.Split(strings.TrimPrefix(browserWS, "ws://"), "/")[0]
	var pageWS string
	for deadline := time.Now().Add(10 * time.Second); pageWS == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no page target in Chromium")
		}
		resp, err := http.Get("http://" + host + "/json/list")
		if err != nil {
			continue
		}
		var targets []struct{ Type, URL, WebSocketDebuggerURL string }
		json.NewDecoder(resp.Body).Decode(&targets)
		resp.Body.Close()
		for _, tg := range targets {
			if tg.Type == "page" && strings.HasPrefix(tg.URL, "http") {
				pageWS = tg.WebSocketDebuggerURL
			}
		}
	}
	conn, _, err := websocket.DefaultDialer.Dial(pageWS, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &devtools{t: t, conn: conn}
}

// eval runs expr in the page (promises awaited) and returns its value as
// a string; a thrown exception is an error.
func (d *devtools) eval(expr string) (string, error) {
	d.id++
	msg := map[string]any{"id": d.id, "method": "Runtime.evaluate", "params": map[string]any{
		"expression": expr, "awaitPromise": true, "returnByValue": true}}
	if err := d.conn.WriteJSON(msg); err != nil {
		return "", err
	}
	for {
		d.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		var ans struct {
			ID     int `json:"id"`
			Result struct {
				Result struct {
					Value any `json:"value"`
				} `json:"result"`
				Exception *struct {
					Text string `json:"text"`
				} `json:"exceptionDetails"`
			} `json:"result"`
		}
		if err := d.conn.ReadJSON(&ans); err != nil {
			return "", err
		}
		if ans.ID != d.id {
			continue // an event
		}
		if ans.Result.Exception != nil {
			return "", fmt.Errorf("page: %s", ans.Result.Exception.Text)
		}
		return fmt.Sprint(ans.Result.Result.Value), nil
	}
}

// until evaluates expr until it returns want, or fails after within.
func (d *devtools) until(within time.Duration, expr, want string) string {
	d.t.Helper()
	var got string
	var err error
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got, err = d.eval(expr); err == nil && got == want {
			return got
		}
	}
	d.t.Fatalf("%s = %q (%v), want %q", expr, got, err, want)
	return ""
}

// TestChromiumReportPage: a citizen fills the report page in Russian in
// headless Chromium (what happened, category, address) and sends it; the
// report is stored as typed, the page shows the status link, and an empty
// description is refused on the page without a request.
func TestChromiumReportPage(t *testing.T) {
	f := newFixture(t)
	d := openDevtools(t, f.http.URL+"/report?lang=ru")
	d.until(15*time.Second, `document.readyState + '|' + document.querySelector('[data-t=what]').textContent`, "complete|Что случилось?")
	if got, _ := d.eval(`document.title + '|' + document.documentElement.lang + '|' + document.getElementById('category').options[1].textContent`); got != "102 — отправить сообщение|ru|Кража" {
		t.Fatalf("page in Russian: %q", got)
	}
	before := len(f.svc.Reports(false, 1000))
	d.eval(`document.getElementById('text').value = '  '; document.getElementById('send').click(); 'ok'`)
	d.until(5*time.Second, `document.getElementById('result').className + '|' + document.getElementById('result').textContent`,
		"err|Опишите происшествие хотя бы 3 буквами.")
	if n := len(f.svc.Reports(false, 1000)); n != before {
		t.Fatalf("an empty report was sent: %d reports, had %d", n, before)
	}
	if _, err := d.eval(`document.getElementById('text').value = 'Во дворе вскрывают машину, двое мужчин';
		document.getElementById('category').value = 'theft';
		document.getElementById('address').value = 'Алматы, ул. Абая 10';
		document.getElementById('phone').value = '8 701 555 01 01';
		document.getElementById('send').click(); 'ok'`); err != nil {
		t.Fatal(err)
	}
	d.until(15*time.Second, `document.getElementById('result').className`, "ok")
	link, _ := d.eval(`document.getElementById('status-link').href`)
	if !strings.Contains(link, "/report/status/") {
		t.Fatalf("status link %q", link)
	}
	var got *struct{ text, cat, phone, lang string }
	for _, r := range f.svc.Reports(false, 1000) {
		if strings.Contains(r.Text, "вскрывают машину") {
			got = &struct{ text, cat, phone, lang string }{r.Text, r.Category, r.ContactPhone, r.Language}
		}
	}
	if got == nil || got.cat != "theft" || got.phone != "+77015550101" || got.lang != "ru" || !strings.Contains(got.text, "Абая 10") {
		t.Fatalf("stored report: %+v", got)
	}
	// The link names the centre's public address (the fixture's
	// StatusURL); the same path on this server answers.
	resp, err := http.Get(f.http.URL + "/report/status/" + link[strings.LastIndex(link, "/")+1:])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status link: %d", resp.StatusCode)
	}
}
