package web

// Intake: the doors a 102 centre is reached through, wired to the dispatch
// core. Package dispatch/intake parses and authenticates (PBX events, AML,
// citizen reports, chat-bot updates, media); the handlers here check the
// door's own secret, hand the result to a dispatch command, and answer.
// Every rejected request is logged with component "intake" (never with a
// secret) and stores nothing: parsing and authentication come before any
// command, and media stored by a request that then fails is removed.
//
//	PBX        POST /ingest/cti        bearer CTI token → PBXOffered/Answered/Transferred/Ended
//	                                   offered also takes waiting AML fixes (AMLMatcher.TakePending)
//	handset    POST /ingest/aml        HMAC → AMLMatcher.Offer(fix, dispatch calls) → AttachAML or wait
//	SMS gw     POST /ingest/aml-sms    bearer SMS token → ParseAMLSMS → as above
//	Telegram   POST /ingest/telegram   secret header → TelegramChannel → ReceiveReport → status link
//	citizen    POST /api/v1/reports    rate limit → JSON part + media (sniffed) → ReceiveReport
//	citizen    POST /api/v1/chat       rate limit → Conversations → ReceiveReport when confirmed
//	operators  GET /api/v1/intake      ringing/active calls + new reports, queue, AML, duplicates

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kuzet/kuzet/dispatch"
	"github.com/kuzet/kuzet/dispatch/eido"
	ik "github.com/kuzet/kuzet/dispatch/intake"
	"github.com/kuzet/kuzet/internal/auth"
)

// IntakeConfig configures the intake doors. A door whose secret is empty
// answers 503 intake_disabled, so an unconfigured door is never open.
type IntakeConfig struct {
	// CTIToken is the bearer token the PBX adapter sends to /ingest/cti.
	CTIToken string
	// AMLHMACKey and AMLHMACAlgorithm ("sha1" or "sha256") verify
	// /ingest/aml (ETSI TS 103 625 §7.4.3); an empty key disables it.
	AMLHMACKey       []byte
	AMLHMACAlgorithm string
	// AMLWait is how long a fix waits for its call (default 2 min).
	AMLWait time.Duration
	// SMSToken is the bearer token of the SMS gateway for /ingest/aml-sms.
	SMSToken string
	// Telegram bot: token from @BotFather, webhook secret_token, Bot API
	// base URL (default https://api.telegram.org).
	TelegramToken  string
	TelegramSecret string
	TelegramAPI    string
	// MediaDir holds uploaded media, content-addressed; empty disables
	// citizen reports and the chat-bot.
	MediaDir    string
	MediaLimits ik.MediaLimits
	// Citizen rate limits per client address: reports (default 1 per
	// 10 s, burst 5) and chat turns (default 1 per 2 s, burst 20).
	ReportRate  float64
	ReportBurst int
	ChatRate    float64
	ChatBurst   int
	// StatusURL is the public address status tokens are appended to,
	// e.g. https://102.example.kz/report/status/ (default /report/status/).
	StatusURL string
	// Agency names this centre in EIDO exports (default "102.police.kz").
	Agency string
	// ChatStore keeps web-chat and Telegram dialogues where every node
	// sees them (Redis with several nodes); nil keeps them in memory.
	ChatStore ik.ChatStore
	// Media, with several nodes that do not share --media-dir, records
	// which node holds each citizen file; a node asked for a file it does
	// not have fetches it from that node. nil: one node or a shared dir.
	Media MediaRegistry
	Now   func() time.Time
}

// MediaRegistry is ik.RedisMediaRegistry's contract.
type MediaRegistry interface {
	Self() string
	Record(ctx context.Context, sums []string) error
	Owner(ctx context.Context, sum string) (string, error)
}

// intakeState is what the intake handlers share; built once in New.
type intakeState struct {
	cfg      IntakeConfig
	log      *slog.Logger
	triage   *ik.Triage
	matcher  *ik.AMLMatcher
	aml      *ik.AMLParser // nil: AML door closed
	blobs    *ik.BlobStore // nil: reports closed
	reports  *ik.Limiter
	chats    *ik.Limiter
	webChat  *ik.Conversations
	bot      *ik.Bot
	telegram *ik.TelegramChannel
}

func newIntakeState(cfg IntakeConfig, log *slog.Logger) (*intakeState, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StatusURL == "" {
		cfg.StatusURL = "/report/status/"
	}
	if cfg.Agency == "" {
		cfg.Agency = "102.police.kz"
	}
	if cfg.ChatRate == 0 {
		cfg.ChatRate = 0.5
	}
	if cfg.ChatBurst == 0 {
		cfg.ChatBurst = 20
	}
	st := &intakeState{cfg: cfg, log: log.With("component", "intake")}
	var err error
	if st.triage, err = ik.NewTriage(ik.TriageConfig{}); err != nil {
		return nil, err
	}
	if st.matcher, err = ik.NewAMLMatcher(ik.AMLMatcherConfig{Wait: cfg.AMLWait, Now: cfg.Now}); err != nil {
		return nil, err
	}
	if len(cfg.AMLHMACKey) > 0 {
		if st.aml, err = ik.NewAMLParser(ik.AMLConfig{HMACKey: cfg.AMLHMACKey, HMACAlgorithm: cfg.AMLHMACAlgorithm}); err != nil {
			return nil, err
		}
	}
	if st.reports, err = ik.NewLimiter(ik.LimiterConfig{Rate: cfg.ReportRate, Burst: cfg.ReportBurst, Now: cfg.Now}); err != nil {
		return nil, err
	}
	if st.chats, err = ik.NewLimiter(ik.LimiterConfig{Rate: cfg.ChatRate, Burst: cfg.ChatBurst, Now: cfg.Now}); err != nil {
		return nil, err
	}
	if st.webChat, err = ik.NewConversations(ik.ConversationConfig{Channel: ik.ChannelWebChat, Store: cfg.ChatStore, Now: cfg.Now}); err != nil {
		return nil, err
	}
	if cfg.MediaDir != "" {
		if st.blobs, err = ik.NewBlobStore(ik.BlobStoreConfig{Dir: cfg.MediaDir, Limits: cfg.MediaLimits}); err != nil {
			return nil, err
		}
	}
	if cfg.TelegramToken != "" {
		if !ik.ValidSecretToken(cfg.TelegramSecret) {
			return nil, fmt.Errorf("web: the Telegram webhook secret must be 1-256 characters A-Z a-z 0-9 _ - (it is sent as secret_token to setWebhook)")
		}
		if st.blobs == nil {
			return nil, fmt.Errorf("web: the Telegram bot needs a media directory")
		}
		if st.bot, err = ik.NewBot(ik.BotConfig{Token: cfg.TelegramToken, BaseURL: cfg.TelegramAPI}); err != nil {
			return nil, err
		}
		conv, err := ik.NewConversations(ik.ConversationConfig{Channel: ik.ChannelTelegram, Store: cfg.ChatStore, Now: cfg.Now})
		if err != nil {
			return nil, err
		}
		if st.telegram, err = ik.NewTelegramChannel(ik.TelegramChannelConfig{Bot: st.bot, Store: st.blobs, Conversations: conv, Logger: log}); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// intakeRoutes lists the intake endpoints.
func (s *Server) intakeRoutes() []route {
	return []route{
		{method: "POST", pattern: "/ingest/cti", public: true, handler: s.ingestCTI},
		{method: "POST", pattern: "/ingest/aml", public: true, handler: s.ingestAML},
		{method: "POST", pattern: "/ingest/aml-sms", public: true, handler: s.ingestAMLSMS},
		{method: "POST", pattern: "/ingest/telegram", public: true, handler: s.ingestTelegram},
		{method: "POST", pattern: "/api/v1/reports", public: true, handler: s.submitReport},
		{method: "GET", pattern: "/api/v1/reports/status/{token}", public: true, handler: s.reportStatus},
		{method: "POST", pattern: "/api/v1/chat", public: true, handler: s.webChat},

		{method: "GET", pattern: "/api/v1/intake", roles: staff, handler: s.intakeQueue},
		{method: "GET", pattern: "/api/v1/reports/{id}", roles: staff, handler: s.getReport},
		{method: "POST", pattern: "/api/v1/reports/{id}/incident", roles: intake, handler: s.reportToIncident},
		{method: "POST", pattern: "/api/v1/reports/{id}/status", roles: intake, handler: s.reportStatusChange},
		{method: "POST", pattern: "/api/v1/incidents/{id}/merge", roles: intake, handler: s.mergeIncident},
		{method: "POST", pattern: "/api/v1/incidents/{id}/merge/undo", roles: []auth.Role{auth.RoleSupervisor}, handler: s.undoMerge},
		{method: "POST", pattern: "/api/v1/calls/{id}/queue", roles: intake, handler: s.callQueue},
		{method: "POST", pattern: "/api/v1/calls/{id}/use-aml", roles: intake, handler: s.useAML},
		{method: "GET", pattern: "/api/v1/duplicates", roles: staff, handler: s.duplicates},
		{method: "GET", pattern: "/api/v1/stats/answer-times", roles: staff, handler: s.answerTimes},
		{method: "GET", pattern: "/api/v1/media/{sha256}", roles: staff, handler: s.media},
		{method: "GET", pattern: "/api/v1/incidents/{id}/eido", roles: staff, handler: s.incidentEIDO},
	}
}

// reject answers an intake error and logs it without secrets.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
	case errors.Is(err, ik.ErrTooLarge):
		err = errorf(http.StatusRequestEntityTooLarge, "too_large", "%v", err)
	case errors.Is(err, ik.ErrBadHMAC):
		err = errorf(http.StatusUnauthorized, "bad_hmac", "%v: check the AML HMAC key agreed with the handset vendor", err)
	case errors.Is(err, ik.ErrBadSecretToken):
		err = errorf(http.StatusUnauthorized, "bad_secret_token", "%v", err)
	case errors.Is(err, ik.ErrUnsupportedMedia):
		err = errorf(http.StatusUnsupportedMediaType, "unsupported_media", "%v: send JPEG, PNG, HEIC, WebP, MP4/MOV, WebM, OGG/Opus, AAC or MP3", err)
	case errors.Is(err, ik.ErrDisguisedMedia):
		err = errorf(http.StatusUnsupportedMediaType, "disguised_media", "%v", err)
	case errors.Is(err, ik.ErrMalformed):
		err = errorf(http.StatusBadRequest, "malformed", "%v", err)
	case errors.Is(err, ik.ErrInvalid), errors.Is(err, ik.ErrUnsupportedVersion):
		err = errorf(http.StatusUnprocessableEntity, "invalid", "%v", err)
	case errors.Is(err, ik.ErrUnknownCall):
		err = errorf(http.StatusConflict, "unknown_call", "%v", err)
	case errors.Is(err, ik.ErrNotFound):
		err = errorf(http.StatusNotFound, "not_found", "%v", err)
	case errors.Is(err, ik.ErrFull):
		err = errorf(http.StatusServiceUnavailable, "full", "%v", err)
	case errors.Is(err, ik.ErrBusy):
		err = errorf(http.StatusServiceUnavailable, "busy", "%v", err)
	case errors.Is(err, ik.ErrBotAPI):
		err = errorf(http.StatusBadGateway, "bot_api", "%v", err)
	}
	if errors.As(err, &he) && he.status < 500 {
		s.in.log.Warn("intake request rejected", "method", r.Method, "path", r.URL.Path, "remote", clientAddr(r), "status", he.status, "code", he.code, "err", he.msg)
	}
	s.writeError(w, r, err)
}

func disabled(door, flag string) error {
	return errorf(http.StatusServiceUnavailable, "intake_disabled", "%s is not configured on this server (%s)", door, flag)
}

// checkBearer compares the request's bearer token with want in constant
// time.
func checkBearer(r *http.Request, want string) error {
	got := bearer(r)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errorf(http.StatusUnauthorized, "bad_token", "send Authorization: Bearer <token> with the token configured for this door")
	}
	return nil
}

// clientAddr is the client's address, the key of citizen rate limits.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// system is the actor of commands from outside systems.
func system(id, idem string) dispatch.Meta {
	return dispatch.Meta{Actor: dispatch.Actor{ID: id}, IdemKey: idem}
}

func (s *Server) ingestCTI(w http.ResponseWriter, r *http.Request) {
	if s.in.cfg.CTIToken == "" {
		s.reject(w, r, disabled("the PBX door", "--cti-token"))
		return
	}
	if err := checkBearer(r, s.in.cfg.CTIToken); err != nil {
		s.reject(w, r, err)
		return
	}
	ev, err := ik.DecodeCTIEvent(r.Body)
	if err != nil {
		s.reject(w, r, err)
		return
	}
	// A PBX retry of the same event is the same command.
	m := system("pbx", "pbx/"+ev.CallID+"/"+ev.Type+"/"+ev.Time.UTC().Format(time.RFC3339Nano))
	var c *dispatch.Call
	switch ev.Type {
	case ik.CTIOffered:
		queue := ik.Queue102
		if strings.Contains(ev.Line, ik.Queue1402) {
			queue = ik.Queue1402
		}
		// Fixes waiting on this node are taken before the call exists, so
		// the answer shows them attached (the journal listener would
		// otherwise race for them); other nodes' fixes come through the
		// listener there.
		var waiting []ik.AMLFix
		if ev.CallerNumber != "" {
			waiting = s.in.matcher.TakePending(ev.CallerNumber)
		}
		c, err = s.svc.PBXOffered(r.Context(), m, dispatch.PBXOffer{PBXCallID: ev.CallID, CallerNumber: ev.CallerNumber,
			CallerName: ev.CallerName, Line: ev.Line, Queue: queue, At: ev.Time})
		if err != nil {
			s.in.matcher.Keep(waiting)
		} else if len(waiting) > 0 {
			s.attachWaitingAML(r.Context(), c.ID, waiting)
			c, _ = s.svc.Call(c.ID)
		}
	case ik.CTIAnswered:
		c, err = s.svc.PBXAnswered(r.Context(), m, ev.CallID, ev.Operator, ev.Time)
	case ik.CTITransferred:
		c, err = s.svc.PBXTransferred(r.Context(), m, ev.CallID, ev.To, ev.Time)
	case ik.CTIEnded:
		c, err = s.svc.PBXEnded(r.Context(), m, ev.CallID, ev.Time)
	}
	if errors.Is(err, dispatch.ErrNotFound) {
		err = errorf(http.StatusConflict, "unknown_call", "%v; the PBX must send offered first", err)
	}
	if err != nil {
		s.reject(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func amlLocation(f ik.AMLFix) dispatch.AMLLocation {
	return dispatch.AMLLocation{
		Location:   dispatch.Location{Lat: f.Lat, Lon: f.Lon, Accuracy: f.Accuracy, Source: "aml"},
		Confidence: f.Confidence, Method: f.Method, LocationTime: f.LocationTime.UTC(), Transport: f.Transport,
	}
}

// amlForNewCall hands AML fixes waiting on this node to a call that
// appeared in the journal, whichever node took the PBX event: the handset
// and the PBX may reach different nodes behind a balancer. It runs on the
// journal follower, so the attaching runs in its own goroutine (rare: only
// when a fix is waiting for that number).
func (s *Server) amlForNewCall(r journalRecord, _ *dispatch.State) {
	if r.Type != dispatch.EvCallReceived {
		return
	}
	var c dispatch.CallReceived
	if json.Unmarshal(r.Data, &c) != nil || c.CallerNumber == "" || !s.in.matcher.HasPending(c.CallerNumber) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.attachWaitingAML(ctx, c.CallID, s.in.matcher.TakePending(c.CallerNumber))
	}()
}

// attachWaitingAML attaches fixes that waited for their call.
func (s *Server) attachWaitingAML(ctx context.Context, callID string, fixes []ik.AMLFix) {
	for _, fix := range fixes {
		if _, err := s.svc.AttachAML(ctx, system("aml", ""), callID, amlLocation(fix)); err != nil {
			s.in.log.Warn("AML fix waiting for this call could not be attached", "call", callID, "err", err)
		}
	}
}

// offerAML attaches a fix to the live call from its number or keeps it
// until the call is offered.
func (s *Server) offerAML(ctx context.Context, fix ik.AMLFix) (map[string]any, error) {
	if fix.NoLocation {
		s.in.log.Info("AML message without a position", "transport", fix.Transport)
		return map[string]any{"status": "no_location"}, nil
	}
	id, ok, err := s.in.matcher.Offer(fix, s.svc)
	if err != nil {
		return nil, err
	}
	if !ok {
		return map[string]any{"status": "pending"}, nil
	}
	if _, err := s.svc.AttachAML(ctx, system("aml", ""), id, amlLocation(fix)); err != nil {
		return nil, err
	}
	return map[string]any{"status": "attached", "call_id": id}, nil
}

// ingestAML takes the AML HTTPS form. Following Google's ELS guidance
// (see intake/aml.go) a message that cannot be used is logged and answered
// 200 with {"status":"discarded",code,message}; the handset cannot fix it
// and must not retry. A bad HMAC is 401 so a misconfigured forwarder shows.
func (s *Server) ingestAML(w http.ResponseWriter, r *http.Request) {
	if s.in.aml == nil {
		s.reject(w, r, disabled("the AML door", "--aml-hmac-key"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, ik.MaxAMLFormBytes+1))
	if err != nil {
		s.reject(w, r, errorf(http.StatusBadRequest, "malformed", "reading the AML body: %v", err))
		return
	}
	if len(body) > ik.MaxAMLFormBytes {
		err = fmt.Errorf("%w: AML body over %d bytes", ik.ErrTooLarge, ik.MaxAMLFormBytes)
	}
	var fix ik.AMLFix
	if err == nil {
		fix, err = s.in.aml.ParseForm(body)
	}
	var out map[string]any
	if err == nil {
		out, err = s.offerAML(r.Context(), fix)
	}
	if errors.Is(err, ik.ErrBadHMAC) {
		s.reject(w, r, err)
		return
	}
	if err != nil {
		s.in.log.Warn("AML message discarded", "remote", clientAddr(r), "err", err)
		writeJSON(w, http.StatusOK, map[string]any{"status": "discarded", "code": "discarded", "message": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// amlSMS is what the SMS gateway posts: the originating address and the
// message text as received.
type amlSMS struct {
	From string `json:"from"`
	Text string `json:"text"`
}

func (s *Server) ingestAMLSMS(w http.ResponseWriter, r *http.Request) {
	if s.in.cfg.SMSToken == "" {
		s.reject(w, r, disabled("the AML SMS door", "--sms-token"))
		return
	}
	if err := checkBearer(r, s.in.cfg.SMSToken); err != nil {
		s.reject(w, r, err)
		return
	}
	var in amlSMS
	if err := decode(r, ik.MaxAMLSMSBytes+256, &in); err != nil {
		s.reject(w, r, err)
		return
	}
	fix, err := ik.ParseAMLSMS(in.Text, in.From)
	if err != nil {
		s.reject(w, r, err)
		return
	}
	out, err := s.offerAML(r.Context(), fix)
	if err != nil {
		s.reject(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// ingestTelegram is the Bot API webhook. After the secret and the update
// are checked it answers 200 even when the dialogue fails, because
// Telegram redelivers non-2xx answers and the citizen has already been
// told what went wrong.
func (s *Server) ingestTelegram(w http.ResponseWriter, r *http.Request) {
	if s.in.telegram == nil {
		s.reject(w, r, disabled("the Telegram bot", "--telegram-token"))
		return
	}
	if err := ik.CheckSecretToken(r.Header.Get("X-Telegram-Bot-Api-Secret-Token"), s.in.cfg.TelegramSecret); err != nil {
		s.reject(w, r, err)
		return
	}
	u, err := ik.DecodeTelegramUpdate(r.Body)
	if err != nil {
		s.reject(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	rep, err := s.in.telegram.HandleUpdate(ctx, u)
	if err != nil {
		s.in.log.Warn("telegram update not handled", "update_id", u.UpdateID, "err", err)
		writeJSON(w, http.StatusOK, map[string]string{"status": "error"})
		return
	}
	out := map[string]any{"status": "ok"}
	if rep != nil {
		stored, token, err := s.storeReport(ctx, *rep, "tg/"+strconv.FormatInt(u.UpdateID, 10))
		if err != nil {
			s.in.log.Error("telegram report not stored", "update_id", u.UpdateID, "err", err)
			writeJSON(w, http.StatusOK, map[string]string{"status": "error"})
			return
		}
		if err := s.in.bot.SendMessage(ctx, u.Message.Chat.ID, ik.T(rep.Language, "status_link", s.in.cfg.StatusURL+token), nil); err != nil {
			s.in.log.Warn("telegram status link not sent", "report", stored.ID, "err", err)
		}
		out["report_id"] = stored.ID
	}
	writeJSON(w, http.StatusOK, out)
}

// storeReport records a parsed report with a fresh status token.
func (s *Server) storeReport(ctx context.Context, rep ik.Report, idem string) (*dispatch.Report, string, error) {
	token, err := ik.NewStatusToken()
	if err != nil {
		return nil, "", err
	}
	hash, err := ik.StatusTokenHash(token)
	if err != nil {
		return nil, "", err
	}
	n := dispatch.NewReport{Channel: rep.Channel, Text: rep.Text, Category: rep.Category, Queue: s.in.triage.Queue(rep.Category),
		ContactPhone: rep.Contact.Phone, ContactName: rep.Contact.Name, Language: rep.Language, StatusHash: hash, ClientKey: rep.ClientKey}
	if l := rep.Location; l != nil {
		loc := dispatch.Location{Address: l.Address, Accuracy: l.Accuracy, Source: "app"}
		if l.HasPoint {
			loc.Lat, loc.Lon = l.Lat, l.Lon
			n.Location = &loc
		} else if l.Address != "" {
			n.Text = strings.TrimSpace(n.Text + "\n" + l.Address)
		}
	}
	sums := make([]string, 0, len(rep.Media))
	for _, m := range rep.Media {
		n.Media = append(n.Media, dispatch.MediaRef{SHA256: m.SHA256, Size: m.Size, MIME: m.MIME, Kind: m.Kind})
		sums = append(sums, m.SHA256)
	}
	// Other nodes learn where the files are before the report reaches them.
	if reg := s.in.cfg.Media; reg != nil {
		if err := reg.Record(ctx, sums); err != nil {
			return nil, "", err
		}
	}
	stored, err := s.svc.ReceiveReport(ctx, system("citizen", idem), n)
	return stored, token, err
}

// reportReceipt is what a citizen gets back: the report id and the status
// link, nothing internal.
type reportReceipt struct {
	ReportID  string `json:"report_id"`
	Token     string `json:"status_token"`
	StatusURL string `json:"status_url"`
}

// Limits on a citizen report upload: the JSON part, and the whole body
// (at most intake's per-kind limits times five files).
const (
	maxReportFiles = 5
	maxReportBody  = 6 * 100 << 20
)

func (s *Server) rateLimit(w http.ResponseWriter, r *http.Request, l *ik.Limiter, key string) bool {
	retry, err := l.Check(key)
	if err == nil {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	s.reject(w, r, errorf(http.StatusTooManyRequests, "rate_limited", "%v", err))
	return false
}

// submitReport takes a citizen report: multipart/form-data with a
// "report" part (JSON, as ik.DecodeReport) and up to five "media"
// parts, each checked on its bytes. Or plain application/json without
// media.
func (s *Server) submitReport(w http.ResponseWriter, r *http.Request) {
	if s.in.blobs == nil {
		s.reject(w, r, disabled("citizen reports", "--media-dir"))
		return
	}
	if !s.rateLimit(w, r, s.in.reports, "report:"+clientAddr(r)) {
		return
	}
	channel := ik.ChannelApp
	if r.URL.Query().Get("channel") == ik.ChannelWeb {
		channel = ik.ChannelWeb
	}
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var rep ik.Report
	var created []string // blobs this request stored, removed if it fails
	fail := func(err error) {
		for _, sum := range created {
			if rerr := s.in.blobs.Remove(sum); rerr != nil {
				s.in.log.Error("removing media of a rejected report", "sha256", sum, "err", rerr)
			}
		}
		s.reject(w, r, err)
	}
	switch ct {
	case "application/json":
		var err error
		if rep, err = ik.DecodeReport(r.Body, channel); err != nil {
			fail(err)
			return
		}
	case "multipart/form-data":
		var err error
		rep, created, err = readReportUpload(http.MaxBytesReader(w, r.Body, maxReportBody), params["boundary"], channel, s.in.blobs)
		if err != nil {
			fail(err)
			return
		}
	default:
		fail(errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send multipart/form-data (a \"report\" JSON part and \"media\" files) or application/json"))
		return
	}
	rep.ClientKey = clientAddr(r)
	stored, token, err := s.storeReport(r.Context(), rep, "")
	if err != nil {
		fail(err)
		return
	}
	writeJSON(w, http.StatusCreated, reportReceipt{ReportID: stored.ID, Token: token, StatusURL: s.in.cfg.StatusURL + token})
}

// readReportUpload reads a multipart report: one "report" JSON part and
// up to maxReportFiles "media" parts streamed into the blob store, each
// checked on its bytes. It returns the blobs it newly created, which the
// caller removes if the report is then rejected; on error it has removed
// them already.
func readReportUpload(body io.Reader, boundary, channel string, blobs *ik.BlobStore) (rep ik.Report, created []string, err error) {
	defer func() {
		if err != nil {
			for _, sum := range created {
				blobs.Remove(sum)
			}
			created = nil
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				err = errorf(http.StatusRequestEntityTooLarge, "too_large", "the upload is larger than %d bytes", mbe.Limit)
			}
		}
	}()
	if boundary == "" {
		return rep, nil, errorf(http.StatusBadRequest, "malformed", "multipart body without a boundary")
	}
	mr := multipart.NewReader(body, boundary)
	gotReport := false
	var media []ik.MediaRef
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return rep, created, err
			}
			return rep, created, errorf(http.StatusBadRequest, "malformed", "multipart body: %v", err)
		}
		switch part.FormName() {
		case "report":
			if gotReport {
				return rep, created, errorf(http.StatusBadRequest, "malformed", "send one report part")
			}
			gotReport = true
			// Validation waits for the media: a report may be a photo only.
			if rep, err = ik.DecodeReport(part, channel); err != nil && !errors.Is(err, ik.ErrInvalid) {
				return rep, created, err
			}
		case "media":
			if len(media) == maxReportFiles {
				return rep, created, errorf(http.StatusRequestEntityTooLarge, "too_many_files", "at most %d media files per report", maxReportFiles)
			}
			ref, isNew, err := blobs.PutNew(part, part.Header.Get("Content-Type"))
			if err != nil {
				return rep, created, err
			}
			if isNew {
				created = append(created, ref.SHA256)
			}
			media = append(media, ref)
		default:
			return rep, created, errorf(http.StatusBadRequest, "malformed", "unknown part %q; send a \"report\" JSON part and \"media\" files", part.FormName())
		}
		part.Close()
	}
	if !gotReport {
		return rep, created, errorf(http.StatusBadRequest, "malformed", "the multipart body needs a \"report\" part with the report JSON")
	}
	rep.Channel = channel
	rep.Media = append(rep.Media, media...)
	return rep, created, rep.Validate()
}

func (s *Server) reportStatus(w http.ResponseWriter, r *http.Request) {
	notFound := errorf(http.StatusNotFound, "not_found", "no report has this status link; check that the whole link was copied")
	hash, err := ik.StatusTokenHash(r.PathValue("token"))
	if err != nil {
		s.reject(w, r, notFound)
		return
	}
	status, at, err := s.svc.PublicReportStatus(hash)
	if err != nil {
		s.reject(w, r, notFound)
		return
	}
	writeJSON(w, http.StatusOK, ik.PublicView{Status: ik.PublicStatus(status), UpdatedAt: at})
}

// chatTurn is one web-chat turn. Session is a random id the browser keeps
// (at least 22 characters: 128 bits in base64url).
type chatTurn struct {
	Session  string             `json:"session"`
	Text     string             `json:"text,omitempty"`
	Location *ik.ReportLocation `json:"location,omitempty"`
	Contact  *ik.Contact        `json:"contact,omitempty"`
	Media    []string           `json:"media,omitempty"` // not accepted: upload with POST /api/v1/reports
}

type chatAnswer struct {
	ik.ChatReply
	Receipt *reportReceipt `json:"receipt,omitempty"`
}

func (s *Server) webChat(w http.ResponseWriter, r *http.Request) {
	if !s.rateLimit(w, r, s.in.chats, "chat:"+clientAddr(r)) {
		return
	}
	var in chatTurn
	if err := decode(r, 16<<10, &in); err != nil {
		s.reject(w, r, err)
		return
	}
	if len(in.Session) < 22 || len(in.Session) > 64 || !ik.ValidSecretToken(in.Session) {
		s.reject(w, r, errorf(http.StatusUnprocessableEntity, "invalid", "session must be a random id of 22-64 characters A-Z a-z 0-9 _ -"))
		return
	}
	if len(in.Media) > 0 {
		s.reject(w, r, errorf(http.StatusUnprocessableEntity, "invalid", "the web chat takes text and location; send photos with the report form"))
		return
	}
	if in.Location != nil {
		in.Location.HasPoint = true
	}
	reply, err := s.in.webChat.Handle("web:"+in.Session, ik.ChatInput{Text: in.Text, Location: in.Location, Contact: in.Contact})
	if err != nil {
		s.reject(w, r, err)
		return
	}
	out := chatAnswer{ChatReply: reply}
	if reply.Report != nil {
		reply.Report.ClientKey = clientAddr(r)
		stored, token, err := s.storeReport(r.Context(), *reply.Report, "")
		if err != nil {
			s.reject(w, r, err)
			return
		}
		out.Receipt = &reportReceipt{ReportID: stored.ID, Token: token, StatusURL: s.in.cfg.StatusURL + token}
	}
	writeJSON(w, http.StatusOK, out)
}

// intakeItem is one row of the operators' intake queue.
type intakeItem struct {
	Kind         string                `json:"kind"` // call or report
	ID           string                `json:"id"`
	Queue        string                `json:"queue"`
	Channel      string                `json:"channel"`
	State        string                `json:"state"` // ringing, active, transferred, new
	CallerNumber string                `json:"caller_number,omitempty"`
	Text         string                `json:"text,omitempty"`
	Category     string                `json:"category,omitempty"`
	Location     *dispatch.Location    `json:"location,omitempty"`
	AML          *dispatch.AMLLocation `json:"aml,omitempty"`
	Media        []dispatch.MediaRef   `json:"media,omitempty"`
	IncidentID   string                `json:"incident_id,omitempty"`
	ReceivedAt   time.Time             `json:"received_at"`
	Duplicates   []dupCandidate        `json:"duplicates"`
}

type dupCandidate struct {
	Kind      string   `json:"kind"` // incident, call, report
	ID        string   `json:"id"`
	Score     float64  `json:"score"`
	DistanceM float64  `json:"distance_m"`
	GapS      float64  `json:"gap_s"`
	Reasons   []string `json:"reasons"`
}

// recentItems collects what a new item may duplicate: open incidents and
// calls and reports of the duplicate window, as "kind:id".
func (s *Server) recentItems(now time.Time) *ik.DupSet {
	var out []ik.DupItem
	since := now.Add(-10 * time.Minute)
	s.svc.View(func(st *dispatch.State) {
		for _, in := range st.Incidents {
			if in.Status == dispatch.IncidentClosed {
				continue
			}
			it := ik.DupItem{ID: "incident:" + in.ID, Time: in.CreatedAt, Lat: in.Location.Lat, Lon: in.Location.Lon, HasPoint: true, Text: in.Narrative}
			for _, cid := range in.CallIDs {
				if c := st.Calls[cid]; c != nil && c.CallerNumber != "" {
					it.Number = c.CallerNumber
					break
				}
			}
			out = append(out, it)
		}
		for _, c := range st.Calls {
			if c.ReceivedAt.Before(since) {
				continue
			}
			it := ik.DupItem{ID: "call:" + c.ID, Time: c.ReceivedAt, Number: c.CallerNumber, Text: c.Summary}
			if l := callPoint(c); l != nil {
				it.Lat, it.Lon, it.HasPoint = l.Lat, l.Lon, true
			}
			out = append(out, it)
		}
		for _, rp := range st.Reports {
			if rp.ReceivedAt.Before(since) {
				continue
			}
			it := ik.DupItem{ID: "report:" + rp.ID, Time: rp.ReceivedAt, Number: rp.ContactPhone, Text: rp.Text}
			if rp.Location != nil {
				it.Lat, it.Lon, it.HasPoint = rp.Location.Lat, rp.Location.Lon, true
			}
			out = append(out, it)
		}
	})
	return ik.NewDupSet(out)
}

// callPoint is where a call is: the operator's location, else the AML fix.
func callPoint(c *dispatch.Call) *dispatch.Location {
	if c.Location != nil {
		return c.Location
	}
	if c.AML != nil {
		return &c.AML.Location
	}
	return nil
}

func candidates(item ik.DupItem, recent *ik.DupSet) []dupCandidate {
	out := []dupCandidate{}
	self := item.ID
	for _, c := range recent.Score(item, ik.DupConfig{}) {
		if c.ID == self {
			continue
		}
		kind, id, _ := strings.Cut(c.ID, ":")
		out = append(out, dupCandidate{Kind: kind, ID: id, Score: c.Score, DistanceM: c.DistanceM, GapS: c.Gap.Seconds(), Reasons: c.Reasons})
	}
	return out
}

func (s *Server) intakeQueue(w http.ResponseWriter, r *http.Request) {
	now := s.in.cfg.Now()
	recent := s.recentItems(now)
	items := []intakeItem{}
	for _, c := range s.svc.Calls(true, 500) {
		state := "ringing"
		switch {
		case c.TransferredTo != "":
			state = "transferred"
		case c.AnsweredAt != nil:
			state = "active"
		}
		it := intakeItem{Kind: "call", ID: c.ID, Queue: c.Queue, Channel: string(c.Channel), State: state, CallerNumber: c.CallerNumber,
			Text: c.Summary, Location: c.Location, AML: c.AML, IncidentID: c.IncidentID, ReceivedAt: c.ReceivedAt}
		d := ik.DupItem{ID: "call:" + c.ID, Time: c.ReceivedAt, Number: c.CallerNumber, Text: c.Summary}
		if l := callPoint(c); l != nil {
			d.Lat, d.Lon, d.HasPoint = l.Lat, l.Lon, true
		}
		it.Duplicates = candidates(d, recent)
		items = append(items, it)
	}
	for _, rp := range s.svc.Reports(true, 500) {
		it := intakeItem{Kind: "report", ID: rp.ID, Queue: rp.Queue, Channel: rp.Channel, State: string(rp.Status), CallerNumber: rp.ContactPhone,
			Text: rp.Text, Category: rp.Category, Location: rp.Location, Media: rp.Media, ReceivedAt: rp.ReceivedAt}
		d := ik.DupItem{ID: "report:" + rp.ID, Time: rp.ReceivedAt, Number: rp.ContactPhone, Text: rp.Text}
		if rp.Location != nil {
			d.Lat, d.Lon, d.HasPoint = rp.Location.Lat, rp.Location.Lon, true
		}
		it.Duplicates = candidates(d, recent)
		items = append(items, it)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) getReport(w http.ResponseWriter, r *http.Request) {
	rp, err := s.svc.Report(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rp)
}

func (s *Server) reportToIncident(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusCreated, func(m dispatch.Meta, in dispatch.ReportIncident) (*dispatch.Incident, error) {
		return s.svc.ReportToIncident(r.Context(), m, r.PathValue("id"), in)
	})
}

func (s *Server) reportStatusChange(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusOK, func(m dispatch.Meta, in dispatch.ReportStatusChange) (*dispatch.Report, error) {
		return s.svc.SetReportStatus(r.Context(), m, r.PathValue("id"), in)
	})
}

func (s *Server) mergeIncident(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusOK, func(m dispatch.Meta, in dispatch.MergeRequest) (*dispatch.Incident, error) {
		return s.svc.Merge(r.Context(), m, r.PathValue("id"), in)
	})
}

type undoMergeRequest struct {
	MergeID string `json:"merge_id"`
	Reason  string `json:"reason"`
}

func (s *Server) undoMerge(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusOK, func(m dispatch.Meta, in undoMergeRequest) (*dispatch.Incident, error) {
		return s.svc.UndoMerge(r.Context(), m, r.PathValue("id"), in.MergeID, in.Reason)
	})
}

func (s *Server) callQueue(w http.ResponseWriter, r *http.Request) {
	command(s, w, r, http.StatusOK, func(m dispatch.Meta, in dispatch.QueueChange) (any, error) {
		c, rp, err := s.svc.SetCallQueue(r.Context(), m, r.PathValue("id"), in)
		if rp != nil {
			return rp, err
		}
		return c, err
	})
}

func (s *Server) useAML(w http.ResponseWriter, r *http.Request) {
	action(s, w, r, func(m dispatch.Meta) (*dispatch.Call, error) {
		return s.svc.UseAML(r.Context(), m, r.PathValue("id"))
	})
}

func (s *Server) duplicates(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := s.in.cfg.Now()
	item := ik.DupItem{ID: "query:", Time: now, Text: q.Get("text")}
	if len(item.Text) > 4000 {
		s.reject(w, r, errorf(http.StatusBadRequest, "bad_query", "text is at most 4000 bytes"))
		return
	}
	if n := q.Get("number"); n != "" {
		e164, err := ik.NormalizePhone(n)
		if err != nil {
			s.reject(w, r, errorf(http.StatusBadRequest, "bad_query", "number: %v", err))
			return
		}
		item.Number = e164
	}
	if q.Get("lat") != "" || q.Get("lon") != "" {
		lat, err1 := strconv.ParseFloat(q.Get("lat"), 64)
		lon, err2 := strconv.ParseFloat(q.Get("lon"), 64)
		loc := dispatch.Location{Lat: lat, Lon: lon}
		if err1 != nil || err2 != nil || loc.Validate() != nil {
			s.reject(w, r, errorf(http.StatusBadRequest, "bad_query", "lat and lon must both be WGS 84 degrees"))
			return
		}
		item.Lat, item.Lon, item.HasPoint = lat, lon, true
	}
	writeJSON(w, http.StatusOK, map[string]any{"candidates": candidates(item, s.recentItems(now))})
}

// answerTimes reports the NENA answer figures, by default over the last
// 24 hours; ?from=&to= take RFC 3339 times.
func (s *Server) answerTimes(w http.ResponseWriter, r *http.Request) {
	now := s.in.cfg.Now()
	from, to := now.Add(-24*time.Hour), now
	for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if v := r.URL.Query().Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				s.reject(w, r, errorf(http.StatusBadRequest, "bad_query", "%s must be an RFC 3339 time", name))
				return
			}
			*dst = t
		}
	}
	writeJSON(w, http.StatusOK, s.svc.AnswerStats(from, to, now))
}

// media serves stored media to staff as a download: the type is what the
// bytes were sniffed as at upload, never rendered inline (a polyglot file
// passes the head check but must not run as HTML).
// mediaProxiedHeader marks a media request one node makes to another, so
// it is never passed on again.
const mediaProxiedHeader = "X-Kuzet-Media-Proxied"

var mediaClient = &http.Client{Timeout: 2 * time.Minute}

// proxyMedia fetches a citizen file from the node that holds it, with the
// caller's own token (sessions are shared), and passes the answer on.
func (s *Server) proxyMedia(w http.ResponseWriter, r *http.Request, owner, sum string) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, owner+"/api/v1/media/"+sum, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	req.Header.Set(mediaProxiedHeader, "1")
	if rg := r.Header.Get("Range"); rg != "" {
		req.Header.Set("Range", rg)
	}
	resp, err := mediaClient.Do(req)
	if err != nil {
		s.in.log.Warn("media held by another node could not be fetched", "node", owner, "sha256", sum, "err", err)
		s.writeError(w, r, errorf(http.StatusBadGateway, "media_node_unreachable", "the file is on node %s, which does not answer", owner))
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "Content-Disposition",
		"Cache-Control", "Content-Security-Policy", "X-Content-Type-Options"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (s *Server) media(w http.ResponseWriter, r *http.Request) {
	if s.in.blobs == nil {
		s.reject(w, r, disabled("media", "--media-dir"))
		return
	}
	sum := r.PathValue("sha256")
	f, err := s.in.blobs.Open(sum)
	if errors.Is(err, ik.ErrNotFound) && s.in.cfg.Media != nil && r.Header.Get(mediaProxiedHeader) == "" {
		if owner, oerr := s.in.cfg.Media.Owner(r.Context(), sum); oerr == nil && owner != "" && owner != s.in.cfg.Media.Self() {
			s.proxyMedia(w, r, owner, sum)
			return
		}
	}
	if err != nil {
		s.reject(w, r, err)
		return
	}
	defer f.Close()
	head := make([]byte, ik.SniffLen)
	n, _ := io.ReadFull(f, head)
	mt, err := ik.Sniff(head[:n])
	if err != nil {
		s.reject(w, r, err)
		return
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", mt.MIME)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Disposition", `attachment; filename="`+sum[:16]+`"`)
	w.Header().Set("Cache-Control", "private, max-age=86400, immutable")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; sandbox")
	http.ServeContent(w, r, "", time.Time{}, f)
}

func (s *Server) incidentEIDO(w http.ResponseWriter, r *http.Request) {
	var doc *eido.Document
	var err error
	s.svc.View(func(st *dispatch.State) {
		doc, err = eido.Build(st, r.PathValue("id"), eido.Config{Agency: s.in.cfg.Agency, Issuer: "kuzet." + s.in.cfg.Agency})
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(doc)
}
