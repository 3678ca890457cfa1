package filejournal

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/kuzet/kuzet/dispatch/journal"
)

// VerifyDir checks the journal in dir without opening it for writing, so it
// can run beside a live server: every frame's checksum, the sequence, the
// previous-hash link and the hash itself. It returns the number of intact
// records, and a *journal.BrokenError naming the first bad one. A last
// frame cut short by a crash is not an integrity break (it was never
// acknowledged) and ends the check.
func VerifyDir(dir string) (uint64, error) {
	f, err := os.Open(filepath.Join(dir, fileName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var (
		n    uint64
		prev string
		hdr  [headerSize]byte
	)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		} else if err != nil {
			return n, err
		}
		size := binary.LittleEndian.Uint32(hdr[0:4])
		if size == 0 || size > maxBodySize {
			return n, &journal.BrokenError{Seq: n + 1, Reason: fmt.Sprintf("frame length %d out of range", size)}
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(r, body); err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		} else if err != nil {
			return n, err
		}
		if crc32.Update(crc32.Checksum(hdr[8:], castagnoli), castagnoli, body) != binary.LittleEndian.Uint32(hdr[4:8]) {
			return n, &journal.BrokenError{Seq: n + 1, Reason: "checksum mismatch: the stored bytes were altered or damaged"}
		}
		var m meta
		if err := json.Unmarshal(body, &m); err != nil {
			return n, &journal.BrokenError{Seq: n + 1, Reason: "record is not valid JSON"}
		}
		hash := hex.EncodeToString(hdr[8:])
		switch {
		case m.Seq != n+1:
			return n, &journal.BrokenError{Seq: n + 1, Reason: fmt.Sprintf("found sequence %d: records removed or reordered", m.Seq)}
		case m.Prev != prev:
			return n, &journal.BrokenError{Seq: m.Seq, Reason: "previous-hash link does not match: this record or the one before it was altered"}
		case journal.Chain(prev, body) != hash:
			return n, &journal.BrokenError{Seq: m.Seq, Reason: "stored hash does not match the record's content"}
		}
		prev = hash
		n++
	}
}
