package filejournal

import (
	"testing"

	"github.com/kuzet/kuzet/dispatch/journal/journaltest"
)

// BenchmarkAppend: group commit with fdatasync before every acknowledgement.
func BenchmarkAppend(b *testing.B) {
	j, err := Open(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	journaltest.BenchAppend(b, j)
}
