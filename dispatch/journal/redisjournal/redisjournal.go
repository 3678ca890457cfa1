// Package redisjournal is the Redis journal backend for running several
// Kuzet nodes on one Redis: a Redis Stream holds the records, a Lua script
// checks aggregate versions and idempotency keys and appends atomically.
//
// Keys (all under kuzet:dispatch:):
//
//	journal            stream; entry id "<seq>-0", fields b (record JSON) and h (hash)
//	journal:head       hash {seq, hash} of the last record: the chain head
//	journal:versions   hash aggregate → version
//	idem:<key>         "first:last:fingerprint", expiring after IdemTTL
//
// Each node has one writer goroutine that batches concurrent appends into
// one script call (group commit, as the embedded backend does). The writer
// seals records against the chain head it knows; if another node moved the
// head, the script answers HEAD and the writer re-seals against the new head
// and calls again. Version checks never need re-validation by the caller
// unless an aggregate really changed (then *journal.ConflictError).
//
// Durability: a record is acknowledged when EVALSHA returns. That means "on
// disk" only with appendonly yes and appendfsync always (deploy/redis.conf);
// Open warns when the server says otherwise. With replicas, WaitReplicas makes
// the writer call WAIT before acknowledging.
package redisjournal

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kuzet/kuzet/dispatch/journal"
)

//go:embed append.lua
var appendLua string

var appendScript = redis.NewScript(appendLua)

const (
	keyStream   = "kuzet:dispatch:journal"
	keyHead     = "kuzet:dispatch:journal:head"
	keyVersions = "kuzet:dispatch:journal:versions"
	keyIdem     = "kuzet:dispatch:idem:"

	maxBatchReqs  = 256
	maxBatchBytes = 4 << 20
	readCount     = 1000
)

// Config configures Open.
type Config struct {
	Client       *redis.Client
	Logger       *slog.Logger
	IdemTTL      time.Duration // how long idempotency keys are remembered; default 30 days
	WaitReplicas int           // replicas that must confirm each append (WAIT); 0 = none
	BlockFor     time.Duration // XREAD BLOCK timeout while following; default 5 s
}

// Journal is the Redis backend. It implements journal.Journal.
type Journal struct {
	cfg Config
	rdb *redis.Client
	log *slog.Logger

	batch *journal.Batcher
	wg    sync.WaitGroup

	// Chain head as last seen by the writer; only the writer uses them.
	head     uint64
	headHash string

	closeOnce sync.Once
}

// Open checks the connection and the server's durability settings and starts
// the writer.
func Open(ctx context.Context, cfg Config) (*Journal, error) {
	if cfg.Client == nil {
		return nil, errors.New("redisjournal: no Redis client")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IdemTTL <= 0 {
		cfg.IdemTTL = 30 * 24 * time.Hour
	}
	if cfg.BlockFor <= 0 {
		cfg.BlockFor = 5 * time.Second
	}
	j := &Journal{
		cfg:   cfg,
		rdb:   cfg.Client,
		log:   cfg.Logger.With("component", "journal"),
		batch: journal.NewBatcher(maxBatchReqs),
	}
	if err := j.rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redisjournal: cannot reach Redis: %w", err)
	}
	j.checkDurability(ctx)
	if cfg.WaitReplicas < 0 {
		return nil, fmt.Errorf("redisjournal: WaitReplicas %d is negative", cfg.WaitReplicas)
	}
	if cfg.WaitReplicas > 0 {
		j.checkReplicas(ctx)
	}
	if err := appendScript.Load(ctx, j.rdb).Err(); err != nil {
		return nil, fmt.Errorf("redisjournal: load append script: %w", err)
	}
	if err := j.refreshHead(ctx); err != nil {
		return nil, err
	}
	j.wg.Add(1)
	go func() { defer j.wg.Done(); j.batch.Run(j.commit) }()
	return j, nil
}

// checkReplicas warns when fewer replicas are connected than each append
// waits for: commands will not be acknowledged until they connect.
func (j *Journal) checkReplicas(ctx context.Context) {
	info, err := j.rdb.Info(ctx, "replication").Result()
	if err != nil {
		j.log.Warn("cannot read Redis replication state", "err", err)
		return
	}
	n := 0
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			n, _ = strconv.Atoi(v)
		}
	}
	if n < j.cfg.WaitReplicas {
		j.log.Warn("fewer Redis replicas connected than each journal append waits for: commands fail until they connect",
			"connected", n, "wait_replicas", j.cfg.WaitReplicas)
	}
}

func (j *Journal) checkDurability(ctx context.Context) {
	vals, err := j.rdb.ConfigGet(ctx, "append*").Result()
	if err != nil {
		j.log.Warn("cannot read Redis durability settings; make sure appendonly yes and appendfsync always are set", "err", err)
		return
	}
	if vals["appendonly"] != "yes" || vals["appendfsync"] != "always" {
		j.log.Warn("Redis is not configured to fsync every write: acknowledged commands can be lost in a Redis crash; set appendonly yes and appendfsync always (deploy/redis.conf)",
			"appendonly", vals["appendonly"], "appendfsync", vals["appendfsync"])
	}
}

func (j *Journal) refreshHead(ctx context.Context) error {
	vals, err := j.rdb.HMGet(ctx, keyHead, "seq", "hash").Result()
	if err != nil {
		return fmt.Errorf("redisjournal: read chain head: %w", err)
	}
	j.head, j.headHash = 0, ""
	if s, ok := vals[0].(string); ok {
		if j.head, err = strconv.ParseUint(s, 10, 64); err != nil {
			return fmt.Errorf("%w: head sequence %q", journal.ErrCorrupt, s)
		}
	}
	if h, ok := vals[1].(string); ok {
		j.headHash = h
	}
	return nil
}

// Append implements journal.Journal.
func (j *Journal) Append(ctx context.Context, a journal.Append) (journal.Result, error) {
	return j.batch.Submit(ctx, a)
}

// commit appends a batch, re-preparing after head moves and stopping points.
func (j *Journal) commit(batch []journal.Request) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(batch) > 0 {
		n, prepared, err := j.prepare(batch)
		if err != nil {
			for _, req := range batch {
				req.Reply(journal.Result{}, err)
			}
			return
		}
		out, err := j.call(ctx, prepared[:n])
		if err != nil {
			// The outcome is unknown: the script may have run. Re-read the
			// head so the next batch seals correctly; clients retry with
			// their idempotency keys.
			j.log.Error("journal append to Redis failed", "err", err)
			if rerr := j.refreshHead(ctx); rerr != nil {
				j.log.Error("re-read journal head", "err", rerr)
			}
			for _, req := range batch[:n] {
				req.Reply(journal.Result{}, fmt.Errorf("redisjournal: append: %w", err))
			}
			batch = batch[n:]
			continue
		}
		switch out.status {
		case "HEAD":
			j.head, j.headHash = out.headSeq, out.headHash
			continue
		case "OK":
			j.ack(ctx, batch[:n], prepared[:n])
			batch = batch[n:]
		case "DUP", "CONFLICT":
			i := out.index // commands before i were appended
			j.ack(ctx, batch[:i], prepared[:i])
			j.reject(ctx, batch[i], out)
			if i > 0 {
				last := prepared[i-1].records[len(prepared[i-1].records)-1]
				j.head, j.headHash = last.Seq, last.Hash
			}
			batch = batch[i+1:]
		}
	}
}

type prepared struct {
	records []journal.Record
	args    []any
}

// prepare seals the records of as many requests as fit in one call, from
// the current head.
func (j *Journal) prepare(batch []journal.Request) (int, []prepared, error) {
	head, hash := j.head, j.headHash
	out := make([]prepared, 0, len(batch))
	size := 0
	for _, req := range batch {
		a := req.Append
		each, _ := a.Versions()
		p := prepared{records: make([]journal.Record, len(a.Events))}
		p.args = append(p.args, a.IdemKey, a.Fingerprint, len(a.Expect))
		for _, e := range a.Expect {
			p.args = append(p.args, e.Aggregate, strconv.FormatUint(e.Version, 10))
		}
		p.args = append(p.args, len(a.Events))
		for k, ev := range a.Events {
			if err := journal.Seal(&ev, head+1, each[k], hash, a.IdemKey, a.Fingerprint); err != nil {
				return 0, nil, err
			}
			head, hash = ev.Seq, ev.Hash
			p.records[k] = ev
			size += len(ev.Body)
			p.args = append(p.args, strconv.FormatUint(ev.Seq, 10), ev.Aggregate, strconv.FormatUint(ev.Version, 10), ev.Hash, ev.Body)
		}
		out = append(out, p)
		if size > maxBatchBytes {
			break
		}
	}
	return len(out), out, nil
}

type scriptResult struct {
	status   string
	index    int // 0-based command index for DUP and CONFLICT
	headSeq  uint64
	headHash string
	prior    string // DUP: "first:last:fp"
	agg      string // CONFLICT
	actual   uint64
}

func (j *Journal) call(ctx context.Context, cmds []prepared) (scriptResult, error) {
	keys := []string{keyStream, keyHead, keyVersions}
	args := []any{strconv.FormatUint(j.head, 10), j.headHash, int64(j.cfg.IdemTTL / time.Second), len(cmds)}
	for _, c := range cmds {
		idem := c.args[0].(string)
		if idem == "" {
			keys = append(keys, keyIdem) // placeholder, never read
		} else {
			keys = append(keys, keyIdem+idem)
		}
		args = append(args, c.args...)
	}
	v, err := appendScript.Run(ctx, j.rdb, keys, args...).StringSlice()
	if err != nil {
		return scriptResult{}, err
	}
	if j.cfg.WaitReplicas > 0 && len(v) > 0 && v[0] != "HEAD" {
		n, err := j.rdb.Wait(ctx, j.cfg.WaitReplicas, 5*time.Second).Result()
		if err != nil {
			return scriptResult{}, fmt.Errorf("WAIT for %d replicas: %w", j.cfg.WaitReplicas, err)
		}
		if n < int64(j.cfg.WaitReplicas) {
			return scriptResult{}, fmt.Errorf("only %d of %d replicas confirmed the write within 5 s (the command is not acknowledged; a retry with its idempotency key returns it once a replica has it)", n, j.cfg.WaitReplicas)
		}
	}
	var r scriptResult
	if len(v) == 0 {
		return r, fmt.Errorf("redisjournal: empty script reply")
	}
	r.status = v[0]
	switch {
	case r.status == "HEAD" && len(v) == 3, r.status == "OK" && len(v) == 3:
		r.headSeq, err = strconv.ParseUint(v[1], 10, 64)
		r.headHash = v[2]
	case r.status == "DUP" && len(v) == 3:
		r.index, err = strconv.Atoi(v[1])
		r.index--
		r.prior = v[2]
	case r.status == "CONFLICT" && len(v) == 5:
		r.index, err = strconv.Atoi(v[1])
		r.index--
		r.agg = v[2]
		if err == nil {
			r.actual, err = strconv.ParseUint(v[3], 10, 64)
		}
		if err == nil {
			r.headSeq, err = strconv.ParseUint(v[4], 10, 64)
		}
	default:
		return r, fmt.Errorf("redisjournal: unexpected script reply %q", v)
	}
	return r, err
}

func (j *Journal) ack(ctx context.Context, reqs []journal.Request, cmds []prepared) {
	for i, req := range reqs {
		req.Reply(journal.Result{Records: cmds[i].records}, nil)
	}
	if len(cmds) > 0 {
		last := cmds[len(cmds)-1].records
		j.head, j.headHash = last[len(last)-1].Seq, last[len(last)-1].Hash
	}
}

func (j *Journal) reject(ctx context.Context, req journal.Request, out scriptResult) {
	if out.status == "CONFLICT" {
		var expected uint64
		for _, e := range req.Append.Expect {
			if e.Aggregate == out.agg {
				expected = e.Version
			}
		}
		req.Reply(journal.Result{}, &journal.ConflictError{Aggregate: out.agg, Expected: expected, Actual: out.actual, Head: out.headSeq})
		return
	}
	res, fp, err := j.resolve(ctx, out.prior)
	if err == nil && fp != req.Append.Fingerprint {
		err = journal.ErrIdempotencyKeyReused
	}
	req.Reply(res, err)
}

// resolve reads the records named by an idempotency entry "first:last:fp".
func (j *Journal) resolve(ctx context.Context, entry string) (journal.Result, string, error) {
	parts := strings.SplitN(entry, ":", 3)
	if len(parts) != 3 {
		return journal.Result{}, "", fmt.Errorf("%w: idempotency entry %q", journal.ErrCorrupt, entry)
	}
	first, err1 := strconv.ParseUint(parts[0], 10, 64)
	last, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil || first == 0 || last < first {
		return journal.Result{}, "", fmt.Errorf("%w: idempotency entry %q", journal.ErrCorrupt, entry)
	}
	msgs, err := j.rdb.XRange(ctx, keyStream, parts[0]+"-0", parts[1]+"-0").Result()
	if err != nil {
		return journal.Result{}, "", fmt.Errorf("redisjournal: read records %d..%d: %w", first, last, err)
	}
	res := journal.Result{Duplicate: true}
	for _, m := range msgs {
		r, err := decodeMessage(m)
		if err != nil {
			return journal.Result{}, "", err
		}
		res.Records = append(res.Records, r)
	}
	if uint64(len(res.Records)) != last-first+1 {
		return journal.Result{}, "", fmt.Errorf("%w: records %d..%d missing from the stream", journal.ErrCorrupt, first, last)
	}
	return res, parts[2], nil
}

func decodeMessage(m redis.XMessage) (journal.Record, error) {
	b, ok1 := m.Values["b"].(string)
	h, ok2 := m.Values["h"].(string)
	if !ok1 || !ok2 {
		return journal.Record{}, fmt.Errorf("%w: stream entry %s lacks fields b and h", journal.ErrCorrupt, m.ID)
	}
	return journal.Decode([]byte(b), h)
}

// Lookup implements journal.Journal.
func (j *Journal) Lookup(ctx context.Context, key string) (journal.Result, bool, error) {
	entry, err := j.rdb.Get(ctx, keyIdem+key).Result()
	if errors.Is(err, redis.Nil) {
		return journal.Result{}, false, nil
	}
	if err != nil {
		return journal.Result{}, false, fmt.Errorf("redisjournal: lookup idempotency key: %w", err)
	}
	res, _, err := j.resolve(ctx, entry)
	if err != nil {
		return journal.Result{}, false, err
	}
	return res, true, nil
}

// Head implements journal.Journal.
func (j *Journal) Head(ctx context.Context) (uint64, error) {
	s, err := j.rdb.HGet(ctx, keyHead, "seq").Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redisjournal: read head: %w", err)
	}
	return strconv.ParseUint(s, 10, 64)
}

// Read implements journal.Journal.
func (j *Journal) Read(ctx context.Context, after uint64, fn func(journal.Record) error) error {
	head, err := j.Head(ctx)
	if err != nil {
		return err
	}
	for after < head {
		msgs, err := j.rdb.XRangeN(ctx, keyStream, "("+strconv.FormatUint(after, 10)+"-0", strconv.FormatUint(head, 10)+"-0", readCount).Result()
		if err != nil {
			return fmt.Errorf("redisjournal: read after %d: %w", after, err)
		}
		if len(msgs) == 0 {
			return fmt.Errorf("%w: records after %d missing from the stream", journal.ErrCorrupt, after)
		}
		for _, m := range msgs {
			r, err := decodeMessage(m)
			if err != nil {
				return err
			}
			if err := fn(r); err != nil {
				return err
			}
			after = r.Seq
		}
	}
	return nil
}

// Follow implements journal.Journal: records from every node, in order.
func (j *Journal) Follow(ctx context.Context, after uint64, fn func(journal.Record) error) error {
	for {
		select {
		case <-j.batch.Done():
			return journal.ErrClosed
		default:
		}
		streams, err := j.rdb.XRead(ctx, &redis.XReadArgs{
			Streams: []string{keyStream, strconv.FormatUint(after, 10) + "-0"},
			Count:   readCount,
			Block:   j.cfg.BlockFor,
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			j.log.Warn("following journal: Redis read failed; retrying", "err", err)
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		for _, s := range streams {
			for _, m := range s.Messages {
				r, err := decodeMessage(m)
				if err != nil {
					return err
				}
				if r.Seq != after+1 {
					return fmt.Errorf("%w: record %d follows %d", journal.ErrCorrupt, r.Seq, after)
				}
				if err := fn(r); err != nil {
					return err
				}
				after = r.Seq
			}
		}
	}
}

// Close stops the writer. The Redis client belongs to the caller.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() {
		j.batch.Close()
		j.wg.Wait()
	})
	return nil
}
