package intake

import "errors"

// Sentinel errors. Every parser and store in this package wraps one of these
// with %w and a message naming the field that was wrong, so the HTTP layer can
// map them to status codes with errors.Is and the log says what to fix.
var (
	// ErrTooLarge: the input exceeded its size limit. HTTP: 413.
	ErrTooLarge = errors.New("intake: input too large")
	// ErrMalformed: the input could not be decoded (bad JSON, bad form
	// encoding, bad SMS syntax). HTTP: 400.
	ErrMalformed = errors.New("intake: malformed input")
	// ErrInvalid: the input decoded but a field is out of range or missing.
	// HTTP: 422.
	ErrInvalid = errors.New("intake: invalid field")

	// ErrUnknownCall: a CTI event names a PBX call id that was never offered.
	// HTTP: 409.
	ErrUnknownCall = errors.New("intake: unknown call")
	// ErrBadTransition: a CTI event is impossible in the call's current state
	// (answered twice, event after ended). HTTP: 409.
	ErrBadTransition = errors.New("intake: impossible call state transition")
	// ErrDuplicateCall: an offered event reuses the id of a call still live.
	// HTTP: 409.
	ErrDuplicateCall = errors.New("intake: call already offered")

	// ErrBadHMAC: the AML HTTPS body's hmac parameter is missing or does not
	// match the configured key. HTTP: 401. Nothing is stored.
	ErrBadHMAC = errors.New("intake: AML hmac verification failed")
	// ErrUnsupportedVersion: an AML message declares a version this parser
	// does not implement. HTTP: 422.
	ErrUnsupportedVersion = errors.New("intake: unsupported AML version")

	// ErrBadSecretToken: the X-Telegram-Bot-Api-Secret-Token header is missing
	// or wrong. HTTP: 401. Nothing is processed.
	ErrBadSecretToken = errors.New("intake: telegram secret token mismatch")

	// ErrUnsupportedMedia: the bytes are not one of the accepted media kinds.
	// HTTP: 415.
	ErrUnsupportedMedia = errors.New("intake: unsupported media type")
	// ErrDisguisedMedia: the declared content type says media but the bytes
	// are something else (executable, archive, HTML, script). HTTP: 415.
	ErrDisguisedMedia = errors.New("intake: media content does not match declared type")

	// ErrNotFound: a blob, report token or conversation does not exist.
	ErrNotFound = errors.New("intake: not found")
	// ErrFull: a bounded store is full and nothing could be evicted.
	// HTTP: 503.
	ErrFull = errors.New("intake: store full")

	// ErrRateLimited: the client exceeded its rate. HTTP: 429 with
	// Retry-After from Limiter.Allow.
	ErrRateLimited = errors.New("intake: rate limited")

	// ErrBotAPI: the Telegram Bot API answered ok=false or an unexpected
	// status. The wrapped message never contains the bot token.
	ErrBotAPI = errors.New("intake: telegram bot api error")

	// ErrBusy: shared state kept changing under a request (another node
	// wrote it each time); the client should send again. HTTP: 503.
	ErrBusy = errors.New("intake: busy")

	// ErrConfig: a Config field is missing or out of range.
	ErrConfig = errors.New("intake: invalid config")
)
