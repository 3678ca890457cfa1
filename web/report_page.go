package web

import (
	"html/template"
	"net/http"
	"time"

	ik "github.com/kuzet/kuzet/dispatch/intake"
)

// The citizen's status link (GET /report/status/{token}) is a plain page
// that works without JavaScript on any phone, in Kazakh, Russian and
// English. It shows only received / in progress / closed and when, like the
// JSON at /api/v1/reports/status/{token}.

var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html lang="kk"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>102 — өтініш мәртебесі / статус обращения / report status</title>
<style>body{font:18px/1.5 system-ui,sans-serif;max-width:34em;margin:2em auto;padding:0 1em}
h1{font-size:1.4em}.s{font-weight:bold}section{border-top:1px solid #ccc;padding:.5em 0}</style>
</head><body>
<h1>102</h1>
{{if .Found}}
<section lang="kk"><p>Өтінішіңіздің мәртебесі: <span class="s">{{.KK}}</span></p><p>Жаңартылды: {{.At}}</p></section>
<section lang="ru"><p>Статус вашего обращения: <span class="s">{{.RU}}</span></p><p>Обновлено: {{.At}}</p></section>
<section lang="en"><p>Your report is: <span class="s">{{.EN}}</span></p><p>Updated: {{.At}}</p></section>
{{else}}
<section lang="kk"><p>Бұл сілтеме бойынша өтініш табылмады. Сілтеменің толық көшірілгенін тексеріңіз.</p></section>
<section lang="ru"><p>Обращение по этой ссылке не найдено. Проверьте, что ссылка скопирована полностью.</p></section>
<section lang="en"><p>No report has this link. Check that the whole link was copied.</p></section>
{{end}}
<section><p>Төтенше жағдайда 102 нөміріне қоңырау шалыңыз. В экстренном случае звоните 102. In an emergency call 102.</p></section>
</body></html>
`))

var statusWords = map[ik.PublicStatus][3]string{
	ik.StatusReceived:   {"қабылданды", "принято", "received"},
	ik.StatusInProgress: {"қаралуда", "в работе", "in progress"},
	ik.StatusClosed:     {"жабылды", "закрыто", "closed"},
}

func (s *Server) reportStatusPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	var data struct {
		Found      bool
		KK, RU, EN string
		At         string
	}
	if hash, err := ik.StatusTokenHash(r.PathValue("token")); err == nil {
		if status, at, err := s.svc.PublicReportStatus(hash); err == nil {
			words, ok := statusWords[ik.PublicStatus(status)]
			if ok {
				data.Found = true
				data.KK, data.RU, data.EN = words[0], words[1], words[2]
				data.At = at.In(almaty).Format("02.01.2006 15:04")
			}
		}
	}
	if !data.Found {
		w.WriteHeader(http.StatusNotFound)
	}
	_ = statusPage.Execute(w, data)
}

var almaty = func() *time.Location {
	l, err := time.LoadLocation("Asia/Almaty")
	if err != nil {
		return time.FixedZone("ALMT", 5*3600)
	}
	return l
}()
