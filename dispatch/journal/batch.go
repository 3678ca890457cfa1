package journal

import (
	"context"
	"sync"
)

// Request is one Append waiting in a Batcher for its writer.
type Request struct {
	Append Append
	reply  chan reply
}

type reply struct {
	res Result
	err error
}

// Reply answers the caller of Submit. Every request gets exactly one reply.
func (r Request) Reply(res Result, err error) { r.reply <- reply{res, err} }

// Batcher is the group-commit queue both backends use: appends from many
// goroutines wait on one channel; the single writer takes everything that
// is waiting (up to a limit) and commits it as one batch, so one fsync (or
// one Redis call) acknowledges many commands.
type Batcher struct {
	reqs chan Request
	done chan struct{}
	once sync.Once
	max  int
}

// NewBatcher returns a Batcher whose batches hold at most max requests.
func NewBatcher(max int) *Batcher {
	return &Batcher{reqs: make(chan Request, max), done: make(chan struct{}), max: max}
}

// Done is closed by Close.
func (b *Batcher) Done() <-chan struct{} { return b.done }

// Submit validates a, queues it and waits for its reply. Once queued the
// request is committed whatever happens to ctx; a caller that gives up
// retries with the same idempotency key.
func (b *Batcher) Submit(ctx context.Context, a Append) (Result, error) {
	if err := a.Validate(); err != nil {
		return Result{}, err
	}
	req := Request{Append: a, reply: make(chan reply, 1)}
	select {
	case b.reqs <- req:
	case <-b.done:
		return Result{}, ErrClosed
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	select {
	case rep := <-req.reply:
		return rep.res, rep.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Requeue puts a request back for a later batch without blocking the writer.
func (b *Batcher) Requeue(r Request) {
	go func() {
		select {
		case b.reqs <- r:
		case <-b.done:
			r.Reply(Result{}, ErrClosed)
		}
	}()
}

// Run is the writer loop: it calls commit with each batch until Close, then
// answers what is still queued with ErrClosed. commit must reply to every
// request (or Requeue it) and must not keep the slice.
func (b *Batcher) Run(commit func([]Request)) {
	batch := make([]Request, 0, b.max)
	for {
		select {
		case req := <-b.reqs:
			batch = append(batch[:0], req)
		case <-b.done:
			for {
				select {
				case req := <-b.reqs:
					req.Reply(Result{}, ErrClosed)
				default:
					return
				}
			}
		}
	drain:
		for len(batch) < b.max {
			select {
			case req := <-b.reqs:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		commit(batch)
	}
}

// Close stops Run after the batch in progress.
func (b *Batcher) Close() { b.once.Do(func() { close(b.done) }) }
