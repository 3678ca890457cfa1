// Package filejournal is the embedded journal backend: one append-only file
// in the data directory, written by a single goroutine with group commit.
//
// Requests from many goroutines queue on a channel; the writer takes all that
// are waiting (up to a batch limit), validates each against the versions and
// idempotency keys in memory plus those of earlier requests in the same
// batch, writes every frame with one write, calls fdatasync once, and only
// then acknowledges the whole batch. Throughput therefore grows with the
// number of concurrent clients while each acknowledgement still means
// "on disk".
//
// File format: a sequence of frames
//
//	len   uint32 LE   length of body
//	crc   uint32 LE   CRC-32C of hash ‖ body
//	hash  [32]byte    SHA-256(previous hash hex ‖ body), see journal.Chain
//	body  [len]byte   the record's JSON (journal.Record)
//
// On open every frame is checked (CRC, chain, sequence). A damaged frame at
// the end, within the size of one batch write, is the trace of a crash
// during an unacknowledged write: it is truncated and logged. Damage earlier
// in the file is corruption: Open refuses with journal.ErrCorrupt and the
// offset, and `kuzet audit-verify` names the record.
//
// After a failed write or fsync the writer stops for good (journal.ErrFailed):
// the kernel may have dropped the dirty pages, so continuing could
// acknowledge commands that are not on disk.
package filejournal

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/kuzet/kuzet/dispatch/journal"
)

const (
	fileName     = "journal.kzj"
	headerSize   = 4 + 4 + 32
	maxBodySize  = 1 << 20 // one record; commands are far smaller
	maxBatchSize = 4 << 20 // bytes written by one group commit
	maxBatchReqs = 1024
	recentSize   = 1 << 14 // records kept in memory for followers
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Config configures Open.
type Config struct {
	Dir    string       // data directory; created if missing
	Logger *slog.Logger // optional
	// NoSync skips fdatasync. Only for benchmarks that measure everything
	// but the disk; never in a server.
	NoSync bool
}

type idemEntry struct {
	first, last uint64
	print       string
}

// Journal is the embedded backend. It implements journal.Journal.
type Journal struct {
	cfg  Config
	log  *slog.Logger
	file *os.File // O_APPEND writer; also read with ReadAt
	lock *os.File // flock on the data directory

	batch *journal.Batcher
	wg    sync.WaitGroup

	mu       sync.RWMutex // guards everything below
	versions map[string]uint64
	idem     map[string]idemEntry
	offsets  []int64 // offsets[seq-1] = frame offset
	size     int64   // bytes of valid frames
	head     uint64
	headHash string
	recent   []journal.Record // ring: recent[seq%recentSize]
	ringFrom uint64           // lowest sequence number ever put in recent
	changed  chan struct{}    // closed and replaced after each commit
	failed   error
	closed   bool
}

// Open opens or creates the journal in cfg.Dir, checks every record and
// starts the writer.
func Open(cfg Config) (*Journal, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("filejournal: create data directory: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.Dir, fileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("filejournal: open %s: %w", path, err)
	}
	j := &Journal{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "journal"),
		file:     f,
		lock:     lock,
		batch:    journal.NewBatcher(maxBatchReqs),
		versions: make(map[string]uint64),
		idem:     make(map[string]idemEntry),
		recent:   make([]journal.Record, recentSize),
		changed:  make(chan struct{}),
	}
	if err := j.load(); err != nil {
		f.Close()
		lock.Close()
		return nil, err
	}
	if err := syncDir(cfg.Dir); err != nil {
		f.Close()
		lock.Close()
		return nil, err
	}
	j.wg.Add(1)
	go func() { defer j.wg.Done(); j.batch.Run(j.commit) }()
	return j, nil
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("filejournal: open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("filejournal: data directory %s is in use by another kuzet process (stop it, or use another --data): %w", dir, err)
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("filejournal: open data directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("filejournal: sync data directory: %w", err)
	}
	return nil
}

// meta is the part of a record the index needs; decoding only this keeps
// start-up fast.
type meta struct {
	Seq       uint64 `json:"seq"`
	Aggregate string `json:"agg"`
	Version   uint64 `json:"ver"`
	IdemKey   string `json:"idem"`
	Print     string `json:"fp"`
	Prev      string `json:"prev"`
}

// load scans the file, rebuilding the index, and truncates a torn tail.
func (j *Journal) load() error {
	st, err := j.file.Stat()
	if err != nil {
		return fmt.Errorf("filejournal: stat: %w", err)
	}
	total := st.Size()
	r := bufio.NewReaderSize(io.NewSectionReader(j.file, 0, total), 1<<20)
	var (
		off int64
		hdr [headerSize]byte
		buf []byte
	)
	torn := func(reason string) error {
		j.log.Warn("truncating torn journal tail left by an interrupted write",
			"offset", off, "bytes", total-off, "reason", reason, "last_seq", j.head)
		if err := j.file.Truncate(off); err != nil {
			return fmt.Errorf("filejournal: truncate torn tail: %w", err)
		}
		if err := j.file.Sync(); err != nil {
			return fmt.Errorf("filejournal: sync after truncate: %w", err)
		}
		total = off
		return nil
	}
	corrupt := func(reason string) error {
		return fmt.Errorf("%w: at byte %d after record %d: %s (run `kuzet audit-verify`)", journal.ErrCorrupt, off, j.head, reason)
	}
	// bad decides between a torn tail and corruption. Only the last write
	// can be torn, and it is never larger than one batch; a damaged frame
	// followed by an intact one is corruption, not a crash.
	bad := func(reason string, next int64) error {
		if total-off > maxBatchSize+headerSize+maxBodySize || (next > 0 && j.frameAt(next, total)) {
			return corrupt(reason)
		}
		return torn(reason)
	}
	for off < total {
		if total-off < headerSize {
			if err := bad("incomplete frame header", 0); err != nil {
				return err
			}
			break
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return fmt.Errorf("filejournal: read: %w", err)
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		if n == 0 || n > maxBodySize || off+headerSize+n > total {
			if err := bad("frame length out of range", 0); err != nil {
				return err
			}
			break
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		body := buf[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return fmt.Errorf("filejournal: read: %w", err)
		}
		crc := crc32.Update(crc32.Checksum(hdr[8:], castagnoli), castagnoli, body)
		if crc != binary.LittleEndian.Uint32(hdr[4:8]) {
			if err := bad("checksum mismatch", off+headerSize+n); err != nil {
				return err
			}
			break
		}
		hash := hex.EncodeToString(hdr[8:])
		if journal.Chain(j.headHash, body) != hash {
			return fmt.Errorf("%w: record %d: hash chain does not match (run `kuzet audit-verify`)", journal.ErrCorrupt, j.head+1)
		}
		var m meta
		if err := parseMeta(body, &m); err != nil {
			return fmt.Errorf("%w: record %d: %v", journal.ErrCorrupt, j.head+1, err)
		}
		if m.Seq != j.head+1 || m.Prev != j.headHash {
			return fmt.Errorf("%w: record at byte %d has sequence %d after %d", journal.ErrCorrupt, off, m.Seq, j.head)
		}
		j.offsets = append(j.offsets, off)
		j.versions[m.Aggregate] = m.Version
		if m.IdemKey != "" {
			e, ok := j.idem[m.IdemKey]
			if !ok {
				e.first, e.print = m.Seq, m.Print
			}
			e.last = m.Seq
			j.idem[m.IdemKey] = e
		}
		j.head, j.headHash = m.Seq, hash
		off += headerSize + n
	}
	j.size = off
	j.ringFrom = j.head + 1
	return nil
}

// frameAt reports whether an intact frame starts at off.
func (j *Journal) frameAt(off, total int64) bool {
	var hdr [headerSize]byte
	if total-off < headerSize {
		return false
	}
	if _, err := j.file.ReadAt(hdr[:], off); err != nil {
		return false
	}
	n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
	if n == 0 || n > maxBodySize || off+headerSize+n > total {
		return false
	}
	body := make([]byte, n)
	if _, err := j.file.ReadAt(body, off+headerSize); err != nil {
		return false
	}
	return crc32.Update(crc32.Checksum(hdr[8:], castagnoli), castagnoli, body) == binary.LittleEndian.Uint32(hdr[4:8])
}

// Append implements journal.Journal.
func (j *Journal) Append(ctx context.Context, a journal.Append) (journal.Result, error) {
	return j.batch.Submit(ctx, a)
}

// pending is the outcome of one request inside a batch before it is durable.
type pending struct {
	res     journal.Result
	err     error
	dupOf   int // index into the batch of an earlier request with the same key, or -1
	dupSeqs idemEntry
}

func (j *Journal) commit(batch []journal.Request) {
	j.mu.RLock()
	failed := j.failed
	j.mu.RUnlock()
	if failed != nil {
		for _, req := range batch {
			req.Reply(journal.Result{}, failed)
		}
		return
	}

	out := make([]pending, len(batch))
	overVersions := make(map[string]uint64)
	overIdem := make(map[string]int)
	var (
		frames   []byte
		head     = j.head
		headHash = j.headHash
		records  []journal.Record
	)
	version := func(agg string) uint64 {
		if v, ok := overVersions[agg]; ok {
			return v
		}
		return j.versions[agg] // only this goroutine writes versions
	}
	for i, req := range batch {
		p := &out[i]
		p.dupOf = -1
		a := req.Append
		if a.IdemKey != "" {
			if e, ok := j.idem[a.IdemKey]; ok {
				if e.print != a.Fingerprint {
					p.err = journal.ErrIdempotencyKeyReused
				} else {
					p.dupSeqs = e
				}
				continue
			}
			if k, ok := overIdem[a.IdemKey]; ok {
				if batch[k].Append.Fingerprint != a.Fingerprint {
					p.err = journal.ErrIdempotencyKeyReused
				} else {
					p.dupOf = k
				}
				continue
			}
		}
		conflict := false
		for _, e := range a.Expect {
			if v := version(e.Aggregate); v != e.Version {
				p.err = &journal.ConflictError{Aggregate: e.Aggregate, Expected: e.Version, Actual: v, Head: head}
				conflict = true
				break
			}
		}
		if conflict {
			continue
		}
		if len(frames) > maxBatchSize-maxBodySize*2 {
			// Too much for one write: let the next batch take it.
			p.err = errRetryLater
			continue
		}
		each, final := a.Versions()
		recs := make([]journal.Record, len(a.Events))
		start, startHash := head, headHash
		ok := true
		for k, ev := range a.Events {
			if err := journal.Seal(&ev, head+1, each[k], headHash, a.IdemKey, a.Fingerprint); err != nil {
				p.err = err
				ok = false
				break
			}
			if len(ev.Body) > maxBodySize {
				p.err = fmt.Errorf("%w: record of %d bytes exceeds %d", journal.ErrInvalid, len(ev.Body), maxBodySize)
				ok = false
				break
			}
			recs[k] = ev
			head, headHash = ev.Seq, ev.Hash
		}
		if !ok {
			head, headHash = start, startHash
			continue
		}
		for agg, v := range final {
			overVersions[agg] = v
		}
		if a.IdemKey != "" {
			overIdem[a.IdemKey] = i
		}
		for _, r := range recs {
			frames = appendFrame(frames, r)
		}
		records = append(records, recs...)
		p.res = journal.Result{Records: recs}
	}

	if len(records) > 0 {
		if err := j.write(frames); err != nil {
			j.mu.Lock()
			j.failed = fmt.Errorf("%w: %v", journal.ErrFailed, err)
			failed = j.failed
			j.mu.Unlock()
			j.log.Error("journal write failed; refusing further appends", "err", err)
			for _, req := range batch {
				req.Reply(journal.Result{}, failed)
			}
			return
		}
		j.publish(records, len(frames), overVersions, batch, out)
	}

	for i, req := range batch {
		p := out[i]
		switch {
		case p.err == errRetryLater:
			// Requeue without blocking the writer: the channel has room
			// because this batch took the requests out of it.
			j.batch.Requeue(req)
		case p.err != nil:
			req.Reply(journal.Result{}, p.err)
		case p.dupOf >= 0:
			req.Reply(journal.Result{Records: out[p.dupOf].res.Records, Duplicate: true}, nil)
		case p.dupSeqs.first != 0:
			res, err := j.readRange(p.dupSeqs.first, p.dupSeqs.last)
			req.Reply(journal.Result{Records: res, Duplicate: true}, err)
		default:
			req.Reply(p.res, nil)
		}
	}
}

var errRetryLater = errors.New("filejournal: batch full")

func appendFrame(dst []byte, r journal.Record) []byte {
	var hdr [headerSize]byte
	binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(r.Body)))
	if _, err := hex.Decode(hdr[8:], []byte(r.Hash)); err != nil {
		panic("filejournal: record hash is not hex: " + err.Error())
	}
	crc := crc32.Update(crc32.Checksum(hdr[8:], castagnoli), castagnoli, r.Body)
	binary.LittleEndian.PutUint32(hdr[4:8], crc)
	dst = append(dst, hdr[:]...)
	return append(dst, r.Body...)
}

func (j *Journal) write(frames []byte) error {
	if _, err := j.file.Write(frames); err != nil {
		return err
	}
	if j.cfg.NoSync {
		return nil
	}
	return syscall.Fdatasync(int(j.file.Fd()))
}

// publish makes durable records visible to readers and followers.
func (j *Journal) publish(records []journal.Record, n int, versions map[string]uint64, batch []journal.Request, out []pending) {
	j.mu.Lock()
	off := j.size
	for _, r := range records {
		j.offsets = append(j.offsets, off)
		off += int64(headerSize + len(r.Body))
		j.recent[r.Seq%recentSize] = r
	}
	j.size += int64(n)
	for agg, v := range versions {
		j.versions[agg] = v
	}
	for i, req := range batch {
		if key := req.Append.IdemKey; key != "" && out[i].err == nil && out[i].dupOf < 0 && out[i].dupSeqs.first == 0 {
			recs := out[i].res.Records
			j.idem[key] = idemEntry{first: recs[0].Seq, last: recs[len(recs)-1].Seq, print: req.Append.Fingerprint}
		}
	}
	last := records[len(records)-1]
	j.head, j.headHash = last.Seq, last.Hash
	close(j.changed)
	j.changed = make(chan struct{})
	j.mu.Unlock()
}

// Lookup implements journal.Journal.
func (j *Journal) Lookup(ctx context.Context, key string) (journal.Result, bool, error) {
	j.mu.RLock()
	e, ok := j.idem[key]
	j.mu.RUnlock()
	if !ok {
		return journal.Result{}, false, nil
	}
	recs, err := j.readRange(e.first, e.last)
	if err != nil {
		return journal.Result{}, false, err
	}
	return journal.Result{Records: recs, Duplicate: true}, true, nil
}

func (j *Journal) readRange(first, last uint64) ([]journal.Record, error) {
	var out []journal.Record
	err := j.read(context.Background(), first-1, last, func(r journal.Record) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// Head implements journal.Journal.
func (j *Journal) Head(context.Context) (uint64, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return j.head, nil
}

// Read implements journal.Journal.
func (j *Journal) Read(ctx context.Context, after uint64, fn func(journal.Record) error) error {
	j.mu.RLock()
	head := j.head
	j.mu.RUnlock()
	return j.read(ctx, after, head, fn)
}

// read delivers records after..upto, from memory when they are recent and
// from the file otherwise.
func (j *Journal) read(ctx context.Context, after, upto uint64, fn func(journal.Record) error) error {
	for after < upto {
		j.mu.RLock()
		if j.closed {
			j.mu.RUnlock()
			return journal.ErrClosed
		}
		oldestRecent := j.ringFrom
		if j.head >= recentSize && j.head-recentSize+1 > oldestRecent {
			oldestRecent = j.head - recentSize + 1
		}
		if after+1 >= oldestRecent {
			// Copy out under the lock, deliver without it.
			n := min(upto-after, 256)
			recs := make([]journal.Record, 0, n)
			for s := after + 1; s <= after+n; s++ {
				recs = append(recs, j.recent[s%recentSize])
			}
			j.mu.RUnlock()
			for _, r := range recs {
				if err := fn(r); err != nil {
					return err
				}
			}
			after += n
			continue
		}
		start := j.offsets[after]
		// Read from the file up to the first record still in memory.
		stopSeq := min(upto, oldestRecent-1)
		end := j.size
		if int(stopSeq) < len(j.offsets) {
			end = j.offsets[stopSeq]
		}
		j.mu.RUnlock()
		n, err := j.readFile(ctx, start, end, fn)
		if err != nil {
			return err
		}
		after += n
	}
	return nil
}

func (j *Journal) readFile(ctx context.Context, start, end int64, fn func(journal.Record) error) (uint64, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(j.file, start, end-start), 1<<20)
	var (
		hdr [headerSize]byte
		n   uint64
	)
	for off := start; off < end; {
		if n%4096 == 0 && ctx.Err() != nil {
			return n, ctx.Err()
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return n, fmt.Errorf("filejournal: read at %d: %w", off, err)
		}
		size := int(binary.LittleEndian.Uint32(hdr[0:4]))
		body := make([]byte, size)
		if _, err := io.ReadFull(r, body); err != nil {
			return n, fmt.Errorf("filejournal: read at %d: %w", off, err)
		}
		rec, err := journal.Decode(body, hex.EncodeToString(hdr[8:]))
		if err != nil {
			return n, err
		}
		if err := fn(rec); err != nil {
			return n, err
		}
		n++
		off += int64(headerSize + size)
	}
	return n, nil
}

// Follow implements journal.Journal.
func (j *Journal) Follow(ctx context.Context, after uint64, fn func(journal.Record) error) error {
	for {
		j.mu.RLock()
		head, changed, closed := j.head, j.changed, j.closed
		j.mu.RUnlock()
		if closed {
			return journal.ErrClosed
		}
		if head > after {
			err := j.read(ctx, after, head, func(r journal.Record) error {
				after = r.Seq
				return fn(r)
			})
			if err != nil {
				return err
			}
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-j.batch.Done():
			return journal.ErrClosed
		}
	}
}

// Close stops the writer after the batch in progress and closes the file.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.mu.Unlock()
	j.batch.Close()
	j.wg.Wait()
	err := j.file.Close()
	j.lock.Close()
	return err
}
