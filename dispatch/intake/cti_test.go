package intake

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNormalizePhone(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"8 701 123 45 67", "+77011234567"},
		{"+7 (701) 123-45-67", "+77011234567"},
		{"77011234567", "+77011234567"},
		{"7011234567", "+77011234567"},
		{"87272505050", "+77272505050"},
		{"+33611223344", "+33611223344"},
		{"0033611223344", "+33611223344"},
	} {
		got, err := NormalizePhone(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizePhone(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "102", "abc", "+7 701 12x", "8701123", "+0123456789", strings.Repeat("1", 41)} {
		if _, err := NormalizePhone(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("NormalizePhone(%q) err = %v; want ErrInvalid", bad, err)
		}
	}
}

const (
	ctiOffered  = `{"type":"offered","call_id":"1764091440.17","time":"2026-11-25T17:24:00Z","caller_number":"8 701 123 45 67","caller_name":"АСКАРОВ А","line":"102-1","trunk":"kcell-sip"}`
	ctiAnswered = `{"type":"answered","call_id":"1764091440.17","time":"2026-11-25T17:24:09Z","operator":"op.ainur","extension":"2101"}`
	ctiTransfer = `{"type":"transferred","call_id":"1764091440.17","time":"2026-11-25T17:25:00Z","to":"1402"}`
	ctiEnded    = `{"type":"ended","call_id":"1764091440.17","time":"2026-11-25T17:26:30Z","cause":"normal"}`
)

func decodeCTI(t *testing.T, s string) CTIEvent {
	t.Helper()
	ev, err := DecodeCTIEvent(strings.NewReader(s))
	if err != nil {
		t.Fatalf("DecodeCTIEvent(%s): %v", s, err)
	}
	return ev
}

func TestDecodeCTIEvent(t *testing.T) {
	ev := decodeCTI(t, ctiOffered)
	if ev.CallerNumber != "+77011234567" || ev.CallerName != "АСКАРОВ А" || ev.Line != "102-1" {
		t.Fatalf("offered decoded as %+v", ev)
	}
	if ev := decodeCTI(t, strings.Replace(ctiOffered, "8 701 123 45 67", "Anonymous", 1)); ev.CallerNumber != "" {
		t.Fatalf("withheld number kept as %q", ev.CallerNumber)
	}
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"unknown field", `{"type":"ended","call_id":"a","time":"2026-11-25T17:24:00Z","cause":"normal","x":1}`, ErrMalformed},
		{"two objects", ctiEnded + ctiEnded, ErrMalformed},
		{"not json", `type=offered`, ErrMalformed},
		{"too large", `{"type":"offered","call_id":"a","caller_name":"` + strings.Repeat("x", MaxCTIEventBytes) + `"}`, ErrTooLarge},
		{"bad type", `{"type":"ringing","call_id":"a","time":"2026-11-25T17:24:00Z"}`, ErrInvalid},
		{"no time", `{"type":"ended","call_id":"a","cause":"normal"}`, ErrInvalid},
		{"bad number", `{"type":"offered","call_id":"a","time":"2026-11-25T17:24:00Z","caller_number":"12ab"}`, ErrInvalid},
		{"answered without operator", `{"type":"answered","call_id":"a","time":"2026-11-25T17:24:00Z"}`, ErrInvalid},
		{"answered with cause", `{"type":"answered","call_id":"a","time":"2026-11-25T17:24:00Z","operator":"x","cause":"normal"}`, ErrInvalid},
		{"bad cause", `{"type":"ended","call_id":"a","time":"2026-11-25T17:24:00Z","cause":"boom"}`, ErrInvalid},
		{"space in id", `{"type":"ended","call_id":"a b","time":"2026-11-25T17:24:00Z","cause":"normal"}`, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeCTIEvent(strings.NewReader(tc.body)); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestCallTrackerTransitions(t *testing.T) {
	tr, err := NewCallTracker(CallTrackerConfig{MaxLive: 4, History: 8})
	if err != nil {
		t.Fatal(err)
	}
	// answered before offered → unknown call, nothing recorded
	if _, err := tr.Apply(decodeCTI(t, ctiAnswered)); !errors.Is(err, ErrUnknownCall) {
		t.Fatalf("answered before offered: %v", err)
	}
	if len(tr.Live()) != 0 {
		t.Fatal("unknown call created state")
	}
	c, err := tr.Apply(decodeCTI(t, ctiOffered))
	if err != nil || c.State != PBXRinging {
		t.Fatalf("offered: %+v %v", c, err)
	}
	if _, err := tr.Apply(decodeCTI(t, ctiOffered)); !errors.Is(err, ErrDuplicateCall) {
		t.Fatalf("offered twice: %v", err)
	}
	if id, ok := tr.CallByNumber("+77011234567"); !ok || id != "1764091440.17" {
		t.Fatalf("CallByNumber = %q %v", id, ok)
	}
	c, err = tr.Apply(decodeCTI(t, ctiAnswered))
	if err != nil || c.State != PBXActive || c.Operator != "op.ainur" {
		t.Fatalf("answered: %+v %v", c, err)
	}
	if d, ok := c.AnswerDelay(); !ok || d != 9*time.Second {
		t.Fatalf("answer delay %v %v", d, ok)
	}
	if _, err := tr.Apply(decodeCTI(t, ctiAnswered)); !errors.Is(err, ErrBadTransition) {
		t.Fatalf("answered twice: %v", err)
	}
	c, err = tr.Apply(decodeCTI(t, ctiTransfer))
	if err != nil || c.State != PBXTransferred || c.TransferredTo != "1402" {
		t.Fatalf("transferred: %+v %v", c, err)
	}
	c, err = tr.Apply(decodeCTI(t, ctiEnded))
	if err != nil || c.State != PBXEnded || c.Cause != "normal" {
		t.Fatalf("ended: %+v %v", c, err)
	}
	if _, err := tr.Apply(decodeCTI(t, ctiEnded)); !errors.Is(err, ErrBadTransition) {
		t.Fatalf("ended twice: %v", err)
	}
	if _, ok := tr.CallByNumber("+77011234567"); ok {
		t.Fatal("ended call still active")
	}
	early := decodeCTI(t, strings.Replace(ctiOffered, "1764091440.17", "x2", 1))
	tr.Apply(early)
	bad := decodeCTI(t, `{"type":"ended","call_id":"x2","time":"2026-11-25T17:00:00Z","cause":"normal"}`)
	if _, err := tr.Apply(bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("event before offered time: %v", err)
	}
}

func TestCallTrackerBounded(t *testing.T) {
	tr, _ := NewCallTracker(CallTrackerConfig{MaxLive: 2, History: 3})
	at := time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)
	off := func(id string) error {
		_, err := tr.Apply(CTIEvent{Type: CTIOffered, CallID: id, Time: at})
		return err
	}
	end := func(id string) {
		if _, err := tr.Apply(CTIEvent{Type: CTIEnded, CallID: id, Time: at, Cause: "normal"}); err != nil {
			t.Fatal(err)
		}
	}
	off("a")
	off("b")
	if err := off("c"); !errors.Is(err, ErrFull) {
		t.Fatalf("third live call: %v", err)
	}
	end("b")
	for _, id := range []string{"c", "d"} {
		if err := off(id); err != nil {
			t.Fatal(err)
		}
		end(id)
	}
	// a is still live though it fell out of the ring; it must still end.
	end("a")
	if _, ok := tr.Get("a"); ok {
		t.Fatal("evicted ended call still held")
	}
	if len(tr.byID) > 3 {
		t.Fatalf("byID holds %d calls, want ≤ 3", len(tr.byID))
	}
}

func TestAnswerStatsNENA(t *testing.T) {
	tr, _ := NewCallTracker(CallTrackerConfig{})
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	// 10 calls: answered after 3,5,8,10,12,14,15,18,25 s and one abandoned.
	delays := []int{3, 5, 8, 10, 12, 14, 15, 18, 25, -1}
	for i, d := range delays {
		id := "c" + string(rune('0'+i))
		at := t0.Add(time.Duration(i) * time.Minute)
		if _, err := tr.Apply(CTIEvent{Type: CTIOffered, CallID: id, Time: at, CallerNumber: "+77011234567"}); err != nil {
			t.Fatal(err)
		}
		if d >= 0 {
			if _, err := tr.Apply(CTIEvent{Type: CTIAnswered, CallID: id, Time: at.Add(time.Duration(d) * time.Second), Operator: "op"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tr.Apply(CTIEvent{Type: CTIEnded, CallID: id, Time: at.Add(40 * time.Second), Cause: map[bool]string{true: "normal", false: "abandoned"}[d >= 0]}); err != nil {
			t.Fatal(err)
		}
	}
	// one call still ringing, 5 s old: not yet counted
	ringAt := t0.Add(20 * time.Minute)
	tr.Apply(CTIEvent{Type: CTIOffered, CallID: "ring", Time: ringAt})
	s := tr.Stats(t0, t0.Add(time.Hour), ringAt.Add(5*time.Second))
	want := AnswerStats{Offered: 10, Answered: 9, Abandoned: 1, Within15: 7, Within20: 8, Share15: 0.7, Share20: 0.8}
	if s != want {
		t.Fatalf("stats = %+v\nwant  %+v", s, want)
	}
	// 30 s later the ringing call is late and counts against both.
	s = tr.Stats(t0, t0.Add(time.Hour), ringAt.Add(30*time.Second))
	if s.Offered != 11 || s.Within20 != 8 {
		t.Fatalf("stats with late call = %+v", s)
	}
	// Period filter.
	s = tr.Stats(t0, t0.Add(3*time.Minute), ringAt)
	if s.Offered != 3 || s.Within15 != 3 {
		t.Fatalf("stats first 3 min = %+v", s)
	}
}

func FuzzDecodeCTIEvent(f *testing.F) {
	for _, s := range []string{ctiOffered, ctiAnswered, ctiTransfer, ctiEnded, `{}`, `[]`, `{"type":"offered"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ev, err := DecodeCTIEvent(strings.NewReader(s))
		if err != nil {
			return
		}
		if ev.Validate() != nil {
			t.Fatalf("decoded event fails Validate: %+v", ev)
		}
		tr, _ := NewCallTracker(CallTrackerConfig{MaxLive: 1, History: 1})
		tr.Apply(ev)
	})
}
