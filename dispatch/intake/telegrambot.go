package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
)

// TelegramChannelConfig wires the chat-bot: the Bot API client, the blob
// store for media and the conversation engine.
type TelegramChannelConfig struct {
	Bot           *Bot
	Store         *BlobStore
	Conversations *Conversations
	Logger        *slog.Logger
}

// TelegramChannel turns webhook updates into conversation turns and
// replies through sendMessage.
type TelegramChannel struct {
	bot   *Bot
	store *BlobStore
	conv  *Conversations
	log   *slog.Logger

	// Telegram redelivers an update when the webhook did not answer 2xx
	// in time; recent update ids are remembered so a redelivery does not
	// advance the dialogue twice. mu guards seen and seenRing only.
	mu       sync.Mutex
	seen     map[int64]struct{}
	seenRing [1024]int64
	seenNext int
}

// NewTelegramChannel validates cfg.
func NewTelegramChannel(cfg TelegramChannelConfig) (*TelegramChannel, error) {
	if cfg.Bot == nil || cfg.Store == nil || cfg.Conversations == nil {
		return nil, fmt.Errorf("%w: TelegramChannel needs Bot, Store and Conversations", ErrConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &TelegramChannel{bot: cfg.Bot, store: cfg.Store, conv: cfg.Conversations,
		log: cfg.Logger.With("component", "intake.telegram"), seen: map[int64]struct{}{}}, nil
}

// HandleUpdate processes one decoded update (DecodeTelegramUpdate, after
// CheckSecretToken). It downloads media into the store, advances the
// dialogue and sends the reply. It returns the Report when the citizen has
// just confirmed one; the caller submits it to the dispatch core and may
// then send T(lang, "status_link", url) with SendMessage.
//
// Media the store rejects (wrong type, disguised, too large) is not an
// error of the update: the citizen is told and the dialogue goes on.
func (t *TelegramChannel) HandleUpdate(ctx context.Context, u TGUpdate) (*Report, error) {
	if !t.firstDelivery(u.UpdateID) {
		return nil, nil
	}
	m := u.Message
	if m == nil {
		return nil, nil // edited messages, callback queries etc. are acknowledged only
	}
	if m.From != nil && m.From.IsBot {
		return nil, nil
	}
	in := ChatInput{Text: m.Text}
	if in.Text == "" {
		in.Text = m.Caption
	}
	if l := m.Location; l != nil {
		in.Location = &ReportLocation{Lat: l.Latitude, Lon: l.Longitude, Accuracy: l.HorizontalAccuracy, HasPoint: true}
	}
	if c := m.Contact; c != nil && m.From != nil && c.UserID == m.From.ID {
		// Only the sender's own number: a forwarded contact is someone else.
		in.Contact = &Contact{Phone: c.PhoneNumber, Name: c.FirstName}
	}
	for _, f := range m.files() {
		ref, err := t.bot.FetchInto(ctx, f.id, f.mime, t.store)
		switch {
		case err == nil:
			in.Media = append(in.Media, ref)
		case errors.Is(err, ErrUnsupportedMedia), errors.Is(err, ErrDisguisedMedia), errors.Is(err, ErrTooLarge):
			t.log.Warn("media rejected", "chat", m.Chat.ID, "err", err)
			in.MediaRejected++
		default:
			return nil, fmt.Errorf("telegram media: %w", err)
		}
	}
	key := "tg:" + strconv.FormatInt(m.Chat.ID, 10)
	reply, err := t.conv.Handle(key, in)
	if err != nil {
		return nil, err
	}
	kb := &TGKeyboard{Remove: true}
	if len(reply.Buttons) > 0 {
		kb = &TGKeyboard{}
		for _, row := range reply.Buttons {
			var r []TGButton
			for _, b := range row {
				r = append(r, TGButton{Text: b.Text, RequestLocation: b.RequestLocation})
			}
			kb.Rows = append(kb.Rows, r)
		}
	}
	if err := t.bot.SendMessage(ctx, m.Chat.ID, reply.Text, kb); err != nil {
		// The dialogue state already advanced; the citizen can resend.
		t.log.Warn("sendMessage failed", "chat", m.Chat.ID, "err", err)
		if reply.Report == nil {
			return nil, err
		}
	}
	return reply.Report, nil
}

// firstDelivery records id and reports whether it is new.
func (t *TelegramChannel) firstDelivery(id int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, dup := t.seen[id]; dup {
		return false
	}
	if old := t.seenRing[t.seenNext]; old != 0 {
		delete(t.seen, old)
	}
	t.seenRing[t.seenNext] = id
	t.seenNext = (t.seenNext + 1) % len(t.seenRing)
	t.seen[id] = struct{}{}
	return true
}
