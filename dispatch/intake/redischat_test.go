package intake

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kuzet/kuzet/internal/redistest"
)

// racingStore is a ChatStore that lets another writer change the dialogue
// between each Get and the Put that follows, conflicts times.
type racingStore struct {
	ChatStore
	conflicts int
}

func (s *racingStore) Put(key string, state []byte, version string, ttl time.Duration) (bool, error) {
	if s.conflicts > 0 {
		s.conflicts--
		_, v, _, _ := s.ChatStore.Get(key)
		if _, err := s.ChatStore.Put(key, state, v, ttl); err != nil { // the other node's turn
			return false, err
		}
	}
	return s.ChatStore.Put(key, state, version, ttl)
}

// TestChatAcrossNodes: with a RedisChatStore two nodes' engines continue
// one Telegram dialogue turn by turn, a turn that lost a race with another
// node runs again on the newer state, a dialogue that keeps losing says so
// (ErrBusy, HTTP 503), and the state expires with the idle timeout.
func TestChatAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { rdb.Close() })
	store := NewRedisChatStore(rdb)
	racing := &racingStore{ChatStore: store}
	a, err := NewConversations(ConversationConfig{Channel: ChannelTelegram, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewConversations(ConversationConfig{Channel: ChannelTelegram, Store: racing})
	k := "tg:5550101"
	turn(t, a, k, ChatInput{Text: "/start"})
	if r := turn(t, b, k, ChatInput{Text: "Русский"}); r.Language != LangRU {
		t.Fatalf("node B did not continue node A's dialogue: %+v", r)
	}
	turn(t, a, k, ChatInput{Text: "Во дворе дерутся двое, один с ножом"})
	racing.conflicts = 1
	r := turn(t, b, k, ChatInput{Location: &ReportLocation{Lat: 43.25, Lon: 76.93, HasPoint: true}})
	if racing.conflicts != 0 || r.Buttons == nil {
		t.Fatalf("after a lost race: %+v (conflicts left %d)", r, racing.conflicts)
	}
	turn(t, a, k, ChatInput{Text: "Пропустить"})
	r = turn(t, b, k, ChatInput{Text: "Отправить"})
	if r.Report == nil || r.Report.Location == nil || !r.Report.Location.HasPoint || !strings.Contains(r.Report.Text, "ножом") {
		t.Fatalf("report from a dialogue on two nodes: %+v", r)
	}
	if n, _ := rdb.Exists(t.Context(), chatKeyPrefix+k).Result(); n != 0 {
		t.Fatal("a finished dialogue is still stored")
	}
	racing.conflicts = 10
	if _, err := b.Handle(k, ChatInput{Text: "/start"}); !errors.Is(err, ErrBusy) {
		t.Fatalf("endless conflicts: %v", err)
	}
	racing.conflicts = 0
	turn(t, a, "tg:1", ChatInput{Text: "/start"})
	if ttl, _ := rdb.PTTL(t.Context(), chatKeyPrefix+"tg:1").Result(); ttl <= 29*time.Minute || ttl > 30*time.Minute {
		t.Fatalf("stored dialogue expires in %v, want the 30 min idle timeout", ttl)
	}
	// A stored state that is not a dialogue starts a new one.
	rdb.HSet(t.Context(), chatKeyPrefix+"tg:2", "v", "7", "s", "{not json")
	if r := turn(t, a, "tg:2", ChatInput{Text: "hi"}); r.Text != chooseLangText {
		t.Fatalf("broken state: %+v", r)
	}
}
