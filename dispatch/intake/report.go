package intake

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxReportJSONBytes bounds the JSON part of a citizen report (media are
// uploaded separately and referenced by MediaRef).
const MaxReportJSONBytes = 16 << 10

// Report channels.
const (
	ChannelApp      = "app"      // 102 mobile app
	ChannelWeb      = "web"      // /report page form
	ChannelWebChat  = "webchat"  // /report page chat
	ChannelTelegram = "telegram" // chat-bot
)

// Languages a citizen can use.
const (
	LangKK = "kk"
	LangRU = "ru"
	LangEN = "en"
)

// ReportLocation is where the citizen says it happened.
type ReportLocation struct {
	Lat      float64 `json:"lat"`
	Lon      float64 `json:"lon"`
	Accuracy float64 `json:"accuracy,omitempty"` // metres; 0 unknown
	Address  string  `json:"address,omitempty"`  // free text, e.g. "Абай 52, подъезд 3"
	// HasPoint is false when only Address was given.
	HasPoint bool `json:"has_point"`
}

// Contact is how to call the citizen back.
type Contact struct {
	Phone string `json:"phone,omitempty"` // normalised E.164
	Name  string `json:"name,omitempty"`
}

// Report is one citizen report from any channel.
type Report struct {
	Channel  string          `json:"channel"`
	Text     string          `json:"text"`
	Category string          `json:"category"`
	Location *ReportLocation `json:"location,omitempty"`
	Contact  Contact         `json:"contact"`
	Language string          `json:"language"`
	Media    []MediaRef      `json:"media,omitempty"`
	// ClientKey identifies the sender for rate limits and abuse review
	// (IP, app install id, "tg:<chat id>"); it is never shown publicly.
	ClientKey  string    `json:"client_key,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
}

// DecodeReport reads a report JSON from the app or web form: size limit,
// unknown fields rejected, then Validate.
func DecodeReport(r io.Reader, channel string) (Report, error) {
	var rep Report
	body, err := io.ReadAll(io.LimitReader(r, MaxReportJSONBytes+1))
	if err != nil {
		return rep, fmt.Errorf("%w: reading report: %v", ErrMalformed, err)
	}
	if len(body) > MaxReportJSONBytes {
		return rep, fmt.Errorf("%w: report over %d bytes; send media as separate uploads", ErrTooLarge, MaxReportJSONBytes)
	}
	var in struct {
		Text     string          `json:"text"`
		Category string          `json:"category"`
		Location *ReportLocation `json:"location"`
		Contact  Contact         `json:"contact"`
		Language string          `json:"language"`
		Media    []MediaRef      `json:"media"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return rep, fmt.Errorf("%w: report JSON: %v", ErrMalformed, err)
	}
	if dec.More() {
		return rep, fmt.Errorf("%w: report: one JSON object per request", ErrMalformed)
	}
	rep = Report{Channel: channel, Text: in.Text, Category: in.Category, Location: in.Location,
		Contact: in.Contact, Language: in.Language, Media: in.Media}
	if rep.Location != nil && !rep.Location.HasPoint && (rep.Location.Lat != 0 || rep.Location.Lon != 0) {
		rep.Location.HasPoint = true
	}
	return rep, rep.Validate()
}

// Validate checks every field and normalises the contact phone. An empty
// category is filled from the text (CategoryFromText).
func (r *Report) Validate() error {
	switch r.Channel {
	case ChannelApp, ChannelWeb, ChannelWebChat, ChannelTelegram:
	default:
		return fmt.Errorf("%w: report channel %q", ErrInvalid, r.Channel)
	}
	switch r.Language {
	case LangKK, LangRU, LangEN:
	default:
		return fmt.Errorf("%w: language %q; use kk, ru or en", ErrInvalid, r.Language)
	}
	r.Text = strings.TrimSpace(r.Text)
	if !utf8.ValidString(r.Text) || utf8.RuneCountInString(r.Text) > 4000 {
		return fmt.Errorf("%w: text must be UTF-8, at most 4000 characters", ErrInvalid)
	}
	if r.Text == "" && len(r.Media) == 0 {
		return fmt.Errorf("%w: say what happened in text or attach a photo, video or voice message", ErrInvalid)
	}
	if r.Category == "" {
		r.Category = CategoryFromText(r.Text)
	}
	if err := checkToken("category", r.Category, 64, true); err != nil {
		return err
	}
	if l := r.Location; l != nil {
		if l.HasPoint {
			if math.IsNaN(l.Lat) || math.IsNaN(l.Lon) || math.Abs(l.Lat) > 90 || math.Abs(l.Lon) > 180 {
				return fmt.Errorf("%w: location lat/lon out of range", ErrInvalid)
			}
		}
		if math.IsNaN(l.Accuracy) || l.Accuracy < 0 || l.Accuracy > 1e5 {
			return fmt.Errorf("%w: location accuracy must be 0 to 100000 m", ErrInvalid)
		}
		l.Address = strings.TrimSpace(l.Address)
		if !utf8.ValidString(l.Address) || utf8.RuneCountInString(l.Address) > 300 {
			return fmt.Errorf("%w: address must be UTF-8, at most 300 characters", ErrInvalid)
		}
		if !l.HasPoint && l.Address == "" {
			return fmt.Errorf("%w: location needs a point or an address", ErrInvalid)
		}
	}
	if r.Contact.Phone != "" {
		p, err := NormalizePhone(r.Contact.Phone)
		if err != nil {
			return fmt.Errorf("contact phone: %w", err)
		}
		r.Contact.Phone = p
	}
	if !utf8.ValidString(r.Contact.Name) || utf8.RuneCountInString(r.Contact.Name) > 100 {
		return fmt.Errorf("%w: contact name must be UTF-8, at most 100 characters", ErrInvalid)
	}
	if len(r.Media) > 10 {
		return fmt.Errorf("%w: at most 10 media files per report", ErrInvalid)
	}
	for _, m := range r.Media {
		if len(m.SHA256) != 64 || strings.ToLower(m.SHA256) != m.SHA256 {
			return fmt.Errorf("%w: media ref %q is not a SHA-256", ErrInvalid, trunc(m.SHA256, 70))
		}
		if _, err := hex.DecodeString(m.SHA256); err != nil {
			return fmt.Errorf("%w: media ref %q is not a SHA-256", ErrInvalid, trunc(m.SHA256, 70))
		}
	}
	return nil
}

// PublicStatus is what the citizen's status link shows.
type PublicStatus string

const (
	StatusReceived   PublicStatus = "received"
	StatusInProgress PublicStatus = "in_progress"
	StatusClosed     PublicStatus = "closed"
)

// PublicView is the whole body of the public status page: no ids, units,
// names or notes.
type PublicView struct {
	Status    PublicStatus `json:"status"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// NewStatusToken returns a random 256-bit token, base64url without padding
// (43 characters), for the citizen's status link. It is unguessable and
// says nothing about the report; store only StatusTokenHash(token).
func NewStatusToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("status token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// StatusTokenHash is what the journal stores and looks tokens up by, so a
// journal or backup leak does not hand out working status links. A plain
// SHA-256 is enough: the token has 256 bits of entropy.
func StatusTokenHash(token string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("%w: status token", ErrNotFound)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}
