package filejournal

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kuzet/kuzet/dispatch/journal"
)

func TestParseMetaMatchesJSON(t *testing.T) {
	recs := []journal.Record{
		{Type: "incident.created", Aggregate: "incident:01J", Time: time.Now(), Actor: "user:aigerim", Data: json.RawMessage(`{"a":"\"q\""}`)},
		{Type: "x", Aggregate: "unit:P1", Time: time.Now(), Actor: "device:t1"},
	}
	idems := []string{"", `user:a/key"with\quote`, "user:a/0192f7c4"}
	for _, r := range recs {
		for _, idem := range idems {
			if err := journal.Seal(&r, 7, 3, "abc", idem, "fp1"); err != nil {
				t.Fatal(err)
			}
			var fast, slow meta
			if err := parseMeta(r.Body, &fast); err != nil {
				t.Fatal(err)
			}
			json.Unmarshal(r.Body, &slow)
			if fast != slow {
				t.Errorf("parseMeta(%s) = %+v, json = %+v", r.Body, fast, slow)
			}
		}
	}
}

func FuzzParseMeta(f *testing.F) {
	r := journal.Record{Type: "t", Aggregate: "incident:1", Time: time.Now(), Actor: "system"}
	journal.Seal(&r, 1, 1, "", "k", "f")
	f.Add(r.Body)
	f.Add([]byte(`{"seq":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow meta
		if fastMeta(b, &fast) {
			// When the fast path accepts, it must agree with encoding/json.
			if err := json.Unmarshal(b, &slow); err == nil && fast != slow {
				t.Fatalf("fast %+v, json %+v for %q", fast, slow, b)
			}
		}
	})
}
