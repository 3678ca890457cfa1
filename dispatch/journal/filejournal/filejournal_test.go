package filejournal

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kuzet/kuzet/dispatch/journal"
	"github.com/kuzet/kuzet/dispatch/journal/journaltest"
)

func TestConformance(t *testing.T) {
	journaltest.Run(t, journaltest.Backend{
		Fresh: func(t *testing.T) func() journal.Journal {
			dir := t.TempDir()
			return func() journal.Journal {
				j, err := Open(Config{Dir: dir})
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				return j
			}
		},
	})
}

func appendN(t *testing.T, j *Journal, n int) {
	t.Helper()
	for i := range n {
		_, err := j.Append(context.Background(), journal.Append{
			Expect: []journal.Expectation{{Aggregate: "incident:1", Version: uint64(i)}},
			Events: []journal.Record{{Type: "incident.updated", Aggregate: "incident:1", Time: time.Now(), Actor: "system", Data: json.RawMessage(`{"n":1}`)}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestTornTailIsTruncated(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, j, 5)
	j.Close()
	path := filepath.Join(dir, fileName)
	st, _ := os.Stat(path)
	for _, cut := range []int64{1, 10, headerSize + 3} {
		t.Run("", func(t *testing.T) {
			if err := os.Truncate(path, st.Size()-cut); err != nil {
				t.Fatal(err)
			}
			j, err := Open(Config{Dir: dir})
			if err != nil {
				t.Fatalf("open with torn tail: %v", err)
			}
			defer j.Close()
			if head, _ := j.Head(context.Background()); head != 4 {
				t.Fatalf("head = %d, want 4 (the torn record dropped, never half-parsed)", head)
			}
			if n, err := journal.Verify(context.Background(), j); err != nil || n != 4 {
				t.Fatalf("verify = %d %v", n, err)
			}
			// The journal takes the place of the torn record.
			appendN4(t, j)
			j.Close()
			st, _ = os.Stat(path)
		})
	}
}

func appendN4(t *testing.T, j *Journal) {
	_, err := j.Append(context.Background(), journal.Append{
		Expect: []journal.Expectation{{Aggregate: "incident:1", Version: 4}},
		Events: []journal.Record{{Type: "incident.updated", Aggregate: "incident:1", Time: time.Now(), Actor: "system"}},
	})
	if err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
}

func TestGarbageTailIsTruncated(t *testing.T) {
	dir := t.TempDir()
	j, _ := Open(Config{Dir: dir})
	appendN(t, j, 3)
	j.Close()
	f, _ := os.OpenFile(filepath.Join(dir, fileName), os.O_APPEND|os.O_WRONLY, 0)
	f.Write(make([]byte, 4096)) // a zero-filled page, as after a crash
	f.Close()
	j, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if head, _ := j.Head(context.Background()); head != 3 {
		t.Fatalf("head = %d", head)
	}
}

func TestCorruptionInTheMiddleIsRefused(t *testing.T) {
	dir := t.TempDir()
	j, _ := Open(Config{Dir: dir})
	appendN(t, j, 3)
	j.Close()
	path := filepath.Join(dir, fileName)
	b, _ := os.ReadFile(path)
	// Change one byte inside the first record's body: CRC is fine for the
	// torn-tail rule only at the end, and the chain check catches the rest.
	i := strings.Index(string(b), `"n":1`)
	b[i+4] = '7'
	os.WriteFile(path, b, 0o640)
	_, err := Open(Config{Dir: dir})
	if !errors.Is(err, journal.ErrCorrupt) && err == nil {
		t.Fatalf("open of tampered journal: %v", err)
	}
}

func TestSecondProcessIsLockedOut(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := Open(Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
}
