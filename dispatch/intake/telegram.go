package intake

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Telegram Bot API types, https://core.telegram.org/bots/api#update. Only
// the fields the conversation uses are declared; Telegram adds fields
// without notice, so unknown fields are ignored here (rejecting them would
// break the bot on Telegram's next release), but the body is size-limited
// and every field we use is validated.

// MaxTelegramUpdateBytes bounds one webhook body. Real updates with a
// 4096-character text and entities stay under 32 KiB.
const MaxTelegramUpdateBytes = 64 << 10

// TGUpdate is one webhook update.
type TGUpdate struct {
	UpdateID      int64            `json:"update_id"`
	Message       *TGMessage       `json:"message,omitempty"`
	CallbackQuery *TGCallbackQuery `json:"callback_query,omitempty"`
}

// TGMessage is https://core.telegram.org/bots/api#message, abridged.
type TGMessage struct {
	MessageID int64         `json:"message_id"`
	From      *TGUser       `json:"from,omitempty"`
	Chat      TGChat        `json:"chat"`
	Date      int64         `json:"date"`
	Text      string        `json:"text,omitempty"`
	Caption   string        `json:"caption,omitempty"`
	Location  *TGLocation   `json:"location,omitempty"`
	Contact   *TGContact    `json:"contact,omitempty"`
	Photo     []TGPhotoSize `json:"photo,omitempty"`
	Video     *TGFile       `json:"video,omitempty"`
	Voice     *TGFile       `json:"voice,omitempty"`
	VideoNote *TGFile       `json:"video_note,omitempty"`
	Audio     *TGFile       `json:"audio,omitempty"`
	Document  *TGFile       `json:"document,omitempty"`
}

// TGUser is the sender.
type TGUser struct {
	ID           int64  `json:"id"`
	IsBot        bool   `json:"is_bot"`
	FirstName    string `json:"first_name"`
	LastName     string `json:"last_name,omitempty"`
	Username     string `json:"username,omitempty"`
	LanguageCode string `json:"language_code,omitempty"`
}

// TGChat is the conversation; the bot keeps one dialogue per chat id.
type TGChat struct {
	ID   int64  `json:"id"`
	Type string `json:"type"`
}

// TGLocation is a shared location; horizontal_accuracy is 0..1500 m.
type TGLocation struct {
	Latitude           float64 `json:"latitude"`
	Longitude          float64 `json:"longitude"`
	HorizontalAccuracy float64 `json:"horizontal_accuracy,omitempty"`
}

// TGContact is a shared phone contact.
type TGContact struct {
	PhoneNumber string `json:"phone_number"`
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name,omitempty"`
	UserID      int64  `json:"user_id,omitempty"`
}

// TGPhotoSize is one resolution of a photo; Telegram sends several,
// smallest first.
type TGPhotoSize struct {
	FileID       string `json:"file_id"`
	FileUniqueID string `json:"file_unique_id"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	FileSize     int64  `json:"file_size,omitempty"`
}

// TGFile covers video, voice, video_note, audio and document: the fields
// we use are common to all of them.
type TGFile struct {
	FileID       string `json:"file_id"`
	FileUniqueID string `json:"file_unique_id"`
	Duration     int    `json:"duration,omitempty"`
	MimeType     string `json:"mime_type,omitempty"`
	FileSize     int64  `json:"file_size,omitempty"`
	FileName     string `json:"file_name,omitempty"`
}

// TGCallbackQuery is an inline keyboard press.
type TGCallbackQuery struct {
	ID      string     `json:"id"`
	From    TGUser     `json:"from"`
	Message *TGMessage `json:"message,omitempty"`
	Data    string     `json:"data,omitempty"`
}

// DecodeTelegramUpdate reads one webhook body with a size limit and checks
// the fields the bot relies on.
func DecodeTelegramUpdate(r io.Reader) (TGUpdate, error) {
	var u TGUpdate
	body, err := io.ReadAll(io.LimitReader(r, MaxTelegramUpdateBytes+1))
	if err != nil {
		return u, fmt.Errorf("%w: reading update: %v", ErrMalformed, err)
	}
	if len(body) > MaxTelegramUpdateBytes {
		return u, fmt.Errorf("%w: Telegram update over %d bytes", ErrTooLarge, MaxTelegramUpdateBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&u); err != nil {
		return u, fmt.Errorf("%w: Telegram update JSON: %v", ErrMalformed, err)
	}
	if dec.More() {
		return u, fmt.Errorf("%w: Telegram update: trailing data", ErrMalformed)
	}
	if u.UpdateID <= 0 {
		return u, fmt.Errorf("%w: update_id must be positive", ErrInvalid)
	}
	m := u.Message
	if u.CallbackQuery != nil {
		if len(u.CallbackQuery.Data) > 64 {
			return u, fmt.Errorf("%w: callback data over 64 bytes", ErrInvalid)
		}
		m = u.CallbackQuery.Message
	}
	if m == nil {
		return u, nil // other update kinds are acknowledged and ignored
	}
	if m.Chat.ID == 0 {
		return u, fmt.Errorf("%w: message without chat id", ErrInvalid)
	}
	if !utf8.ValidString(m.Text) || utf8.RuneCountInString(m.Text) > 4096 ||
		!utf8.ValidString(m.Caption) || utf8.RuneCountInString(m.Caption) > 1024 {
		return u, fmt.Errorf("%w: message text over Telegram's limits", ErrInvalid)
	}
	if l := m.Location; l != nil && (l.Latitude < -90 || l.Latitude > 90 || l.Longitude < -180 || l.Longitude > 180 ||
		l.HorizontalAccuracy < 0 || l.HorizontalAccuracy > 1500) {
		return u, fmt.Errorf("%w: location out of range", ErrInvalid)
	}
	if len(m.Photo) > 16 {
		return u, fmt.Errorf("%w: %d photo sizes", ErrInvalid, len(m.Photo))
	}
	for _, f := range m.files() {
		if f.id == "" || len(f.id) > 256 {
			return u, fmt.Errorf("%w: file_id missing or over 256 bytes", ErrInvalid)
		}
	}
	return u, nil
}

type tgFileRef struct {
	id, mime string
	size     int64
}

// files lists the media in a message; for a photo only the largest size.
func (m *TGMessage) files() []tgFileRef {
	var out []tgFileRef
	if n := len(m.Photo); n > 0 {
		best := m.Photo[0]
		for _, p := range m.Photo[1:] {
			if p.Width*p.Height > best.Width*best.Height {
				best = p
			}
		}
		out = append(out, tgFileRef{best.FileID, "image/jpeg", best.FileSize})
	}
	for _, f := range []*TGFile{m.Video, m.Voice, m.VideoNote, m.Audio, m.Document} {
		if f != nil {
			out = append(out, tgFileRef{f.FileID, f.MimeType, f.FileSize})
		}
	}
	return out
}

// CheckSecretToken compares the X-Telegram-Bot-Api-Secret-Token header
// with the secret given to setWebhook, in constant time.
func CheckSecretToken(header, secret string) error {
	if secret == "" || subtle.ConstantTimeCompare([]byte(header), []byte(secret)) != 1 {
		return fmt.Errorf("%w: check the webhook's secret_token", ErrBadSecretToken)
	}
	return nil
}

// ValidSecretToken reports whether s is a secret Telegram accepts in
// setWebhook: 1-256 characters A-Z, a-z, 0-9, _ and -.
func ValidSecretToken(s string) bool {
	if len(s) == 0 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// BotConfig configures Bot.
type BotConfig struct {
	Token string // from @BotFather; never logged
	// BaseURL defaults to https://api.telegram.org; tests point it at a
	// local server speaking the Bot API.
	BaseURL string
	// Timeout bounds each request. Default 10 s.
	Timeout time.Duration
	Client  *http.Client
}

// Bot is a minimal Bot API client: sendMessage, getFile and file
// download. Every error has the token replaced by "<token>".
type Bot struct {
	token, base string
	timeout     time.Duration
	client      *http.Client
}

// NewBot validates cfg.
func NewBot(cfg BotConfig) (*Bot, error) {
	if cfg.Token == "" || strings.ContainsAny(cfg.Token, "/?#% ") {
		return nil, fmt.Errorf("%w: Telegram bot token missing or malformed", ErrConfig)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://api.telegram.org"
	}
	if _, err := url.Parse(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("%w: Telegram BaseURL: %v", ErrConfig, err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	return &Bot{token: cfg.Token, base: strings.TrimRight(cfg.BaseURL, "/"), timeout: cfg.Timeout, client: cfg.Client}, nil
}

// Close releases idle connections to the Bot API.
func (b *Bot) Close() { b.client.CloseIdleConnections() }

func (b *Bot) redact(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrBotAPI, strings.ReplaceAll(err.Error(), b.token, "<token>"))
}

// TGKeyboard is a reply keyboard (https://core.telegram.org/bots/api#replykeyboardmarkup)
// or, with Remove, a ReplyKeyboardRemove.
type TGKeyboard struct {
	Rows   [][]TGButton
	Remove bool
}

// TGButton is a KeyboardButton; RequestLocation asks the client to share
// the phone's location.
type TGButton struct {
	Text            string `json:"text"`
	RequestLocation bool   `json:"request_location,omitempty"`
	RequestContact  bool   `json:"request_contact,omitempty"`
}

func (k *TGKeyboard) markup() any {
	if k == nil {
		return nil
	}
	if k.Remove {
		return map[string]bool{"remove_keyboard": true}
	}
	return map[string]any{"keyboard": k.Rows, "resize_keyboard": true, "one_time_keyboard": true}
}

type tgResponse struct {
	OK          bool            `json:"ok"`
	Result      json.RawMessage `json:"result"`
	ErrorCode   int             `json:"error_code"`
	Description string          `json:"description"`
	Parameters  *struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
}

func (b *Bot) call(ctx context.Context, method string, req any, out any) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBotAPI, method, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, b.base+"/bot"+b.token+"/"+method, bytes.NewReader(body))
	if err != nil {
		return b.redact(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(hr)
	if err != nil {
		return b.redact(err)
	}
	defer resp.Body.Close()
	var r tgResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r); err != nil {
		return fmt.Errorf("%w: %s: HTTP %d with unreadable body", ErrBotAPI, method, resp.StatusCode)
	}
	if !r.OK {
		msg := fmt.Sprintf("%s: %d %s", method, r.ErrorCode, trunc(r.Description, 200))
		if r.Parameters != nil && r.Parameters.RetryAfter > 0 {
			msg += " (retry after " + strconv.Itoa(r.Parameters.RetryAfter) + " s)"
		}
		return fmt.Errorf("%w: %s", ErrBotAPI, strings.ReplaceAll(msg, b.token, "<token>"))
	}
	if out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			return fmt.Errorf("%w: %s result: %v", ErrBotAPI, method, err)
		}
	}
	return nil
}

// SendMessage sends text to a chat with an optional reply keyboard.
func (b *Bot) SendMessage(ctx context.Context, chatID int64, text string, kb *TGKeyboard) error {
	req := map[string]any{"chat_id": chatID, "text": text}
	if m := kb.markup(); m != nil {
		req["reply_markup"] = m
	}
	return b.call(ctx, "sendMessage", req, nil)
}

// TGFileInfo is getFile's result.
type TGFileInfo struct {
	FileID   string `json:"file_id"`
	FileSize int64  `json:"file_size"`
	FilePath string `json:"file_path"`
}

// GetFile resolves a file_id to a download path.
func (b *Bot) GetFile(ctx context.Context, fileID string) (TGFileInfo, error) {
	var f TGFileInfo
	if err := b.call(ctx, "getFile", map[string]string{"file_id": fileID}, &f); err != nil {
		return f, err
	}
	if f.FilePath == "" || strings.Contains(f.FilePath, "..") {
		return f, fmt.Errorf("%w: getFile returned no usable file_path", ErrBotAPI)
	}
	return f, nil
}

// FetchInto downloads a file ({base}/file/bot<token>/<file_path>) and
// streams it into the blob store, where sniffing and size limits apply.
// Telegram's own limit for bots is 20 MB.
func (b *Bot) FetchInto(ctx context.Context, fileID, declared string, store *BlobStore) (MediaRef, error) {
	info, err := b.GetFile(ctx, fileID)
	if err != nil {
		return MediaRef{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 6*b.timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/file/bot"+b.token+"/"+info.FilePath, nil)
	if err != nil {
		return MediaRef{}, b.redact(err)
	}
	resp, err := b.client.Do(hr)
	if err != nil {
		return MediaRef{}, b.redact(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return MediaRef{}, fmt.Errorf("%w: file download: HTTP %d", ErrBotAPI, resp.StatusCode)
	}
	ref, err := store.Put(resp.Body, declared)
	if err != nil {
		return MediaRef{}, b.redactKeep(err)
	}
	return ref, nil
}

// redactKeep keeps the sentinel chain for store errors (they never contain
// the token, but a transport error mid-body could).
func (b *Bot) redactKeep(err error) error {
	if !strings.Contains(err.Error(), b.token) {
		return err
	}
	return b.redact(err)
}
