package intake

import (
	"container/list"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The conversation engine is channel-independent: the Telegram adapter
// and the web chat on /report both turn what the citizen sent into a
// ChatInput (media already stored in the BlobStore) and render the
// ChatReply in their own way.
//
//	language → what happened → where (location or text) → media (optional) → confirm → Report

// ChatInput is one citizen turn.
type ChatInput struct {
	Text     string          `json:"text,omitempty"`
	Location *ReportLocation `json:"location,omitempty"`
	Media    []MediaRef      `json:"media,omitempty"`
	// MediaRejected counts files the channel could not accept (wrong
	// type, too large); the engine tells the citizen.
	MediaRejected int      `json:"-"`
	Contact       *Contact `json:"contact,omitempty"`
}

// ChatButton is one reply button. RequestLocation asks the client for the
// device location (Telegram request_location; navigator.geolocation on
// the web).
type ChatButton struct {
	Text            string `json:"text"`
	RequestLocation bool   `json:"request_location,omitempty"`
}

// ChatReply is the engine's answer. Buttons nil means no keyboard.
// Report is set once, when the citizen confirms.
type ChatReply struct {
	Text     string         `json:"text"`
	Buttons  [][]ChatButton `json:"buttons,omitempty"`
	Language string         `json:"language,omitempty"`
	Report   *Report        `json:"-"`
}

type chatStep int

const (
	stepLang chatStep = iota
	stepWhat
	stepWhere
	stepMedia
	stepConfirm
)

type chatState struct {
	key      string
	step     chatStep
	lang     string
	text     string
	loc      *ReportLocation
	media    []MediaRef
	contact  Contact
	lastSeen time.Time
}

// chatJSON is chatState as a ChatStore keeps it.
type chatJSON struct {
	Step     chatStep        `json:"step"`
	Lang     string          `json:"lang,omitempty"`
	Text     string          `json:"text,omitempty"`
	Loc      *ReportLocation `json:"loc,omitempty"`
	Media    []MediaRef      `json:"media,omitempty"`
	Contact  Contact         `json:"contact"`
	LastSeen time.Time       `json:"last_seen"`
}

func (st *chatState) encode() []byte {
	b, _ := json.Marshal(chatJSON{st.step, st.lang, st.text, st.loc, st.media, st.contact, st.lastSeen})
	return b
}

func decodeChat(key string, b []byte) (*chatState, error) {
	var j chatJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, err
	}
	if j.Step < stepLang || j.Step > stepConfirm {
		return nil, fmt.Errorf("chat step %d", j.Step)
	}
	return &chatState{key, j.Step, j.Lang, j.Text, j.Loc, j.Media, j.Contact, j.LastSeen}, nil
}

// ChatStore keeps dialogue state where every node sees it (Redis with
// several nodes: a Telegram webhook behind a balancer reaches any node).
// Get returns the stored state and a version ("" and ok false when none);
// Put stores it only if the version is still the one Get returned (false
// when another node changed it meanwhile), expiring after ttl; Put with a
// nil state deletes. Conversations without a store keep state in memory.
type ChatStore interface {
	Get(key string) (state []byte, version string, ok bool, err error)
	Put(key string, state []byte, version string, ttl time.Duration) (bool, error)
}

// ConversationConfig configures Conversations.
type ConversationConfig struct {
	Channel string // ChannelTelegram or ChannelWebChat
	// MaxChats bounds dialogues in memory; the least recently active is
	// dropped when full. Default 10,000.
	MaxChats int
	// IdleTimeout restarts a dialogue that has been silent this long.
	// Default 30 minutes.
	IdleTimeout time.Duration
	// MaxMedia per report. Default 5.
	MaxMedia int
	// Store, if set, keeps the state instead of memory (MaxChats then
	// does not apply; IdleTimeout is the stored state's expiry).
	Store ChatStore
	Now   func() time.Time
}

// Conversations holds per-chat dialogue state. One mutex guards the map
// and LRU list; Handle does no I/O.
type Conversations struct {
	cfg   ConversationConfig
	mu    sync.Mutex
	chats map[string]*list.Element
	lru   *list.List
}

// NewConversations validates cfg.
func NewConversations(cfg ConversationConfig) (*Conversations, error) {
	if cfg.Channel != ChannelTelegram && cfg.Channel != ChannelWebChat {
		return nil, fmt.Errorf("%w: conversation channel %q", ErrConfig, cfg.Channel)
	}
	if cfg.MaxChats == 0 {
		cfg.MaxChats = 10000
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.MaxMedia == 0 {
		cfg.MaxMedia = 5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxChats < 0 || cfg.IdleTimeout < 0 || cfg.MaxMedia < 0 || cfg.MaxMedia > 10 {
		return nil, fmt.Errorf("%w: conversation MaxChats, IdleTimeout positive, MaxMedia 1..10", ErrConfig)
	}
	return &Conversations{cfg: cfg, chats: map[string]*list.Element{}, lru: list.New()}, nil
}

// Active returns how many dialogues are held.
func (c *Conversations) Active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Handle advances the dialogue of chat key by one citizen turn. key is
// channel-scoped ("tg:<chat id>", "web:<session>") and also becomes the
// Report's ClientKey.
func (c *Conversations) Handle(key string, in ChatInput) (ChatReply, error) {
	if key == "" || len(key) > 128 {
		return ChatReply{}, fmt.Errorf("%w: chat key", ErrInvalid)
	}
	in.Text = strings.TrimSpace(in.Text)
	if !utf8.ValidString(in.Text) || utf8.RuneCountInString(in.Text) > 4000 {
		return ChatReply{}, fmt.Errorf("%w: chat text must be UTF-8, at most 4000 characters", ErrInvalid)
	}
	if c.cfg.Store != nil {
		return c.handleStored(key, in)
	}
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stateLocked(key, now)
	reply, drop, err := c.turn(st, key, in, now)
	if drop {
		c.dropLocked(key)
	}
	return reply, err
}

// handleStored runs a turn on the state in the store, and runs it again on
// the newer state if another node changed the dialogue meanwhile (a turn
// has no effect outside its state and reply, so it can be repeated).
func (c *Conversations) handleStored(key string, in ChatInput) (ChatReply, error) {
	for range 5 {
		now := c.cfg.Now()
		b, ver, ok, err := c.cfg.Store.Get(key)
		if err != nil {
			return ChatReply{}, fmt.Errorf("chat state: %w", err)
		}
		st := &chatState{key: key, lastSeen: now}
		if ok {
			if old, err := decodeChat(key, b); err == nil && now.Sub(old.lastSeen) <= c.cfg.IdleTimeout {
				st = old
			}
		}
		st.lastSeen = now
		reply, drop, terr := c.turn(st, key, in, now)
		var next []byte
		if !drop {
			next = st.encode()
		}
		saved, err := c.cfg.Store.Put(key, next, ver, c.cfg.IdleTimeout)
		if err != nil {
			return ChatReply{}, fmt.Errorf("chat state: %w", err)
		}
		if saved {
			return reply, terr
		}
	}
	return ChatReply{}, fmt.Errorf("%w: the dialogue kept changing on other nodes; send the message again", ErrBusy)
}

// turn advances st by one input; drop says the dialogue ended.
func (c *Conversations) turn(st *chatState, key string, in ChatInput, now time.Time) (reply ChatReply, drop bool, err error) {
	if in.Contact != nil && in.Contact.Phone != "" {
		if p, err := NormalizePhone(in.Contact.Phone); err == nil {
			st.contact = Contact{Phone: p, Name: trunc(in.Contact.Name, 100)}
		}
	}
	switch strings.ToLower(in.Text) {
	case "/start":
		*st = chatState{key: key, lastSeen: now, contact: st.contact}
		return langPrompt(), false, nil
	case "/cancel":
		return ChatReply{Text: T(st.lang, msgCancelled), Language: st.lang}, true, nil
	}
	lang := st.lang
	r := func(key string, buttons [][]ChatButton, args ...any) (ChatReply, bool, error) {
		return ChatReply{Text: T(lang, key, args...), Buttons: buttons, Language: lang}, false, nil
	}
	switch st.step {
	case stepLang:
		l := pickLang(in.Text)
		if l == "" {
			return langPrompt(), false, nil
		}
		st.lang, lang = l, l
		st.step = stepWhat
		return r(msgAskWhat, nil)
	case stepWhat:
		// People often send the photo or their location first; keep them.
		st.addMedia(in.Media, c.cfg.MaxMedia)
		if in.Location != nil && in.Location.HasPoint {
			l := *in.Location
			st.loc = &l
		}
		if utf8.RuneCountInString(in.Text) < 3 && len(st.media) == 0 {
			return r(msgWhatShort, nil)
		}
		st.text = in.Text
		if st.loc != nil {
			st.step = stepMedia
			return r(msgAskMedia, [][]ChatButton{{{Text: T(lang, msgBtnSkip)}}})
		}
		st.step = stepWhere
		return r(msgAskWhere, whereButtons(lang))
	case stepWhere:
		st.addMedia(in.Media, c.cfg.MaxMedia)
		switch {
		case in.Location != nil && in.Location.HasPoint:
			l := *in.Location
			st.loc = &l
		case utf8.RuneCountInString(in.Text) >= 3:
			st.loc = &ReportLocation{Address: trunc(in.Text, 300)}
		default:
			return r(msgWhereShort, whereButtons(lang))
		}
		st.step = stepMedia
		return r(msgAskMedia, [][]ChatButton{{{Text: T(lang, msgBtnSkip)}}})
	case stepMedia:
		if len(in.Media) > 0 || in.MediaRejected > 0 {
			full := st.addMedia(in.Media, c.cfg.MaxMedia)
			done := [][]ChatButton{{{Text: T(lang, msgBtnDone)}}}
			switch {
			case in.MediaRejected > 0:
				return r(msgMediaBad, done)
			case full:
				return r(msgMediaFull, done)
			}
			return r(msgMediaGot, done, len(st.media))
		}
		if !isButton(in.Text, msgBtnSkip) && !isButton(in.Text, msgBtnDone) {
			return r(msgMediaHint, [][]ChatButton{{{Text: T(lang, msgBtnDone)}}})
		}
		st.step = stepConfirm
		return ChatReply{Text: st.summary(), Language: lang,
			Buttons: [][]ChatButton{{{Text: T(lang, msgBtnSend)}, {Text: T(lang, msgBtnCancel)}}}}, false, nil
	case stepConfirm:
		switch {
		case isButton(in.Text, msgBtnSend):
			rep := &Report{Channel: c.cfg.Channel, Text: st.text, Location: st.loc, Contact: st.contact,
				Language: lang, Media: st.media, ClientKey: key, ReceivedAt: now}
			if err := rep.Validate(); err != nil {
				return ChatReply{}, false, err
			}
			return ChatReply{Text: T(lang, msgSent), Language: lang, Report: rep}, true, nil
		case isButton(in.Text, msgBtnCancel):
			reply, _, err := r(msgCancelled, nil)
			return reply, true, err
		}
		return r(msgConfirmHint, [][]ChatButton{{{Text: T(lang, msgBtnSend)}, {Text: T(lang, msgBtnCancel)}}})
	}
	return ChatReply{}, false, fmt.Errorf("%w: chat in unknown step", ErrInvalid)
}

func (c *Conversations) stateLocked(key string, now time.Time) *chatState {
	if e, ok := c.chats[key]; ok {
		st := e.Value.(*chatState)
		if now.Sub(st.lastSeen) > c.cfg.IdleTimeout {
			*st = chatState{key: key}
		}
		st.lastSeen = now
		c.lru.MoveToFront(e)
		return st
	}
	for c.lru.Len() >= c.cfg.MaxChats {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.chats, old.Value.(*chatState).key)
	}
	st := &chatState{key: key, lastSeen: now}
	c.chats[key] = c.lru.PushFront(st)
	return st
}

func (c *Conversations) dropLocked(key string) {
	if e, ok := c.chats[key]; ok {
		c.lru.Remove(e)
		delete(c.chats, key)
	}
}

// addMedia appends up to max refs, skipping duplicates; it reports whether
// some had to be dropped.
func (st *chatState) addMedia(refs []MediaRef, max int) bool {
	full := false
	for _, m := range refs {
		dup := false
		for _, have := range st.media {
			dup = dup || have.SHA256 == m.SHA256
		}
		if dup {
			continue
		}
		if len(st.media) >= max {
			full = true
			continue
		}
		st.media = append(st.media, m)
	}
	return full || len(st.media) >= max
}

func (st *chatState) summary() string {
	where := ""
	if st.loc != nil {
		if st.loc.HasPoint {
			where = T(st.lang, msgPoint, st.loc.Lat, st.loc.Lon)
		} else {
			where = st.loc.Address
		}
	}
	files := T(st.lang, msgNoMedia)
	if len(st.media) > 0 {
		files = fmt.Sprint(len(st.media))
	}
	text := st.text
	if text == "" {
		text = "—"
	}
	return T(st.lang, msgSummary, trunc(text, 500), where, files)
}

func langPrompt() ChatReply {
	return ChatReply{Text: chooseLangText, Buttons: [][]ChatButton{langButtons}}
}

func whereButtons(lang string) [][]ChatButton {
	return [][]ChatButton{{{Text: T(lang, msgWhereBtn), RequestLocation: true}}}
}

func pickLang(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "қазақша", "казахский", "kk", "қаз", "kazakh":
		return LangKK
	case "русский", "ru", "рус", "russian", "орысша":
		return LangRU
	case "english", "en", "eng", "английский", "ағылшынша":
		return LangEN
	}
	return ""
}

// isButton matches a button label in any language, so a citizen who
// switched keyboard language mid-dialogue is still understood.
func isButton(text, key string) bool {
	t := strings.ToLower(strings.TrimSpace(text))
	for _, m := range catalogue {
		if strings.ToLower(m[key]) == t {
			return true
		}
	}
	return false
}
