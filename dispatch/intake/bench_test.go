package intake

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

func BenchmarkAMLParseForm(b *testing.B) {
	p, _ := NewAMLParser(AMLConfig{HMACKey: []byte("kuzet-aml-shared-key")})
	body := signed(b, p, amlForm)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ParseForm(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAMLParseSMS(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAMLSMS(amlSMS, "87011234567"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCTIDecodeApply(b *testing.B) {
	tr, _ := NewCallTracker(CallTrackerConfig{MaxLive: 1 << 20, History: 1 << 20})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		s := strings.Replace(ctiOffered, "1764091440.17", fmt.Sprint("c", i), 1)
		ev, err := DecodeCTIEvent(strings.NewReader(s))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tr.Apply(ev); err != nil {
			b.Fatal(err)
		}
		ev.Type, ev.CallerNumber, ev.CallerName, ev.Line, ev.Trunk, ev.Cause = CTIEnded, "", "", "", "", "normal"
		if _, err := tr.Apply(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLimiterAllow(b *testing.B) {
	l, _ := NewLimiter(LimiterConfig{Rate: 1e9, Burst: 1 << 30, MaxClients: 10000})
	keys := make([]string, 20000)
	for i := range keys {
		keys[i] = fmt.Sprintf("10.0.%d.%d", i/256, i%256)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.Allow(keys[i%len(keys)]) // half the keys miss and evict
		i++
	}
}

func BenchmarkBlobStorePut1MiB(b *testing.B) {
	s, _ := NewBlobStore(BlobStoreConfig{Dir: b.TempDir()})
	data := append(testJPEG(b, 16, 16), make([]byte, 1<<20)...)
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		i++
		data[len(data)-8] = byte(i) // new content each time: a real write + fsync
		data[len(data)-7] = byte(i >> 8)
		if _, err := s.Put(bytes.NewReader(data), "image/jpeg"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConversationTurn(b *testing.B) {
	c, _ := NewConversations(ConversationConfig{Channel: ChannelWebChat, MaxChats: 1000, IdleTimeout: time.Hour})
	turns := []ChatInput{{Text: "Русский"}, {Text: "Драка во дворе дома 12"}, {Text: "Абая 52"}, {Text: "Пропустить"}, {Text: "Отправить"}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Handle(fmt.Sprint("web:", i/len(turns)%1000), turns[i%len(turns)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
