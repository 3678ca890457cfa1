// Package intake is the outside edge of the 102 centre's intake: it parses,
// authenticates and validates what arrives from the PBX, from handsets
// (Advanced Mobile Location), from citizens (102 app, /report page, web chat,
// Telegram chat-bot), stores their media, and computes the hints the
// call-taker sees (queue 102/1402, duplicate candidates, AML position). It
// imports neither dispatch nor web: the HTTP layer calls it, then hands the
// results to the dispatch core as commands.
//
// # How data moves
//
//	PBX ──POST /ingest/cti──▶ DecodeCTIEvent ─▶ CallTracker.Apply ─▶ PBXCall ─▶ dispatch (ringing/active call)
//	                                                    └─▶ AMLMatcher.TakePending(number) on "offered"
//	handset ─POST /ingest/aml─▶ AMLParser.ParseForm (HMAC) ┐
//	SMS gw ─POST /ingest/aml-sms▶ ParseAMLSMS              ┴▶ AMLFix ─▶ AMLMatcher.Offer ─▶ call id, or wait
//	app/web ─POST report JSON─▶ DecodeReport ─▶ Report ─▶ Triage.Queue ─▶ dispatch (intake queue)
//	app/web ─POST media──────▶ BlobStore.Put (sniff, limit, SHA-256) ─▶ MediaRef
//	Telegram ─POST /ingest/telegram▶ CheckSecretToken, DecodeTelegramUpdate
//	          ─▶ TelegramChannel.HandleUpdate (getFile → BlobStore, Conversations, sendMessage) ─▶ *Report
//	web chat ─POST turn─▶ Conversations.Handle ─▶ ChatReply (+ *Report when confirmed)
//	new call/report/incident ─▶ ScoreDuplicates(item, recent) ─▶ []DupCandidate for the console
//
// # API for the HTTP layer (web)
//
// Every error wraps a sentinel from errors.go; map with errors.Is:
// ErrTooLarge 413, ErrMalformed 400, ErrInvalid 422, ErrUnsupportedVersion
// 422, ErrUnknownCall/ErrBadTransition/ErrDuplicateCall 409, ErrBadHMAC and
// ErrBadSecretToken 401, ErrUnsupportedMedia/ErrDisguisedMedia 415,
// ErrFull 503, ErrNotFound 404. Log the error (it names the field; it never
// contains keys or tokens) with component "intake".
//
//	/ingest/cti       ev, err := DecodeCTIEvent(r.Body); call, err := tracker.Apply(ev)
//	                  on CTIOffered also: fixes := matcher.TakePending(ev.CallerNumber)
//	/ingest/aml       body := read ≤ MaxAMLFormBytes+1 bytes; fix, err := amlParser.ParseForm(body)
//	                  callID, ok, err := matcher.Offer(fix, tracker)
//	                  (log every error; answer 2xx to handsets except 401 for ErrBadHMAC — see aml.go)
//	/ingest/aml-sms   fix, err := ParseAMLSMS(text, originatingMSISDN); then matcher.Offer as above
//	/ingest/telegram  CheckSecretToken(r.Header.Get("X-Telegram-Bot-Api-Secret-Token"), secret)
//	                  u, err := DecodeTelegramUpdate(r.Body); rep, err := tgChannel.HandleUpdate(ctx, u)
//	                  answer 200 quickly; Telegram retries non-2xx.
//	report JSON       rep, err := DecodeReport(r.Body, ChannelApp|ChannelWeb); rep.ClientKey = client
//	report media      ref, err := blobs.Put(r.Body, r.Header.Get("Content-Type"))  (Put enforces the per-kind limit)
//	serving media     blobs.Open(sha) with Content-Type: ref.MIME, X-Content-Type-Options: nosniff and
//	                  Content-Disposition: attachment — sniffing checks the head of the file, so a
//	                  polyglot (JPEG header, HTML after it) must never be rendered inline
//	web chat turn     reply, err := webConversations.Handle("web:"+session, ChatInput{...})
//	every citizen POST  ok, retry := limiter.Allow(clientIP); !ok → 429, Retry-After: ceil(retry s)
//	status link       token, _ := NewStatusToken(); store StatusTokenHash(token) with the report;
//	                  GET /report/status/{token} → look up by StatusTokenHash → PublicView JSON only
//	after a bot report is stored: bot.SendMessage(ctx, chatID, T(rep.Language, "status_link", url), nil)
//
// # API for the dispatch core
//
//   - Triage.Queue(category) gives the initial queue ("102"/"1402") of a call
//     or report; moving it is an operator command in dispatch.
//   - ScoreDuplicates(item, recent, DupConfig{}) is pure: pass the new item
//     and the calls/incidents of the last DupConfig.Window (10 min); show the
//     candidates, let the operator merge or keep separate (merge/undo and
//     EIDO semantics live in dispatch).
//   - An AMLFix attached to a call is an offered location: show Lat/Lon,
//     Accuracy (radius m at Confidence %), Method and LocationTime; use it
//     only when the operator accepts, never over a typed location.
//   - PBXCall.AnswerDelay and CallTracker.Stats give the NENA
//     15 s / 20 s answer figures (NENA-STA-020.1).
//   - If dispatch keeps its own call view, it can implement CallFinder
//     (CallByNumber) instead of CallTracker for AMLMatcher.Offer.
//
// # Concurrency
//
// CallTracker, AMLMatcher, Limiter and Conversations each guard their state
// with one mutex, held only for in-memory work; no method holds two of them
// and none does I/O under its lock. BlobStore has no lock (temp file +
// atomic rename). Parsers are pure. TelegramChannel does network I/O
// (Bot API) outside every lock.
//
// Specs: ETSI TS 103 625 V1.3.1 (AML), Telegram Bot API
// (https://core.telegram.org/bots/api), NENA-STA-020.1-2020 (answer times),
// ITU-T E.164 (numbers), ISO/IEC 14496-12 (ftyp brands). ASTERISK.md
// shows how an Asterisk PBX (ARI) produces the CTI events.
package intake
