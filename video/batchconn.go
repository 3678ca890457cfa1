package video

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// batchConn is the UDP socket under the ICE mux. Writes are copied into a
// batch that one goroutine sends with sendmmsg(2) (ipv4.PacketConn
// WriteBatch) after at most batchDelay or when batchSize packets are
// waiting. On a VM a sendto(2) costs several microseconds — half the CPU of
// forwarding a packet — and a packet fanned out to N viewers arrives here as
// a burst of N writes, so batching turns N syscalls into a few. The price is
// up to batchDelay of added latency.
//
// mu guards cur; a flush swaps cur with the spare batch under mu and
// sends outside it, so writers wait for the syscall only when a whole
// batch is already queued. Lock order: flushMu, then mu.
type batchConn struct {
	*net.UDPConn
	pc   *ipv4.PacketConn
	kick chan struct{}
	quit chan struct{}
	done chan struct{}

	flushMu  sync.Mutex
	mu       sync.Mutex
	cur      []ipv4.Message
	spare    []ipv4.Message
	bufs     [2][][]byte // packet buffers of cur (bufs[curSet]) and spare
	curSet   int
	batching bool
	errors   atomic.Uint64
	sent     atomic.Uint64
	calls    atomic.Uint64
}

const (
	batchSize  = 256
	batchDelay = 200 * time.Microsecond
)

func newBatchConn(c *net.UDPConn, batching bool) *batchConn {
	b := &batchConn{UDPConn: c, batching: batching, pc: ipv4.NewPacketConn(c), kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	for i := range b.bufs {
		b.bufs[i] = make([][]byte, batchSize)
		for j := range b.bufs[i] {
			b.bufs[i][j] = make([]byte, 0, 1500)
		}
	}
	b.cur = make([]ipv4.Message, 0, batchSize)
	b.spare = make([]ipv4.Message, 0, batchSize)
	go b.flusher()
	return b
}

// WriteTo queues p for addr. UDP gives no delivery guarantee, so a packet
// lost to a failed sendmmsg is the same as one lost on the wire.
func (b *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if len(p) > 1500 || !b.batching {
		return b.UDPConn.WriteTo(p, addr)
	}
	b.mu.Lock()
	n := len(b.cur)
	for n == batchSize {
		// The flusher is behind: this writer sends the full batch itself,
		// still as one sendmmsg.
		b.mu.Unlock()
		b.flush()
		b.mu.Lock()
		n = len(b.cur)
	}
	buf := append(b.bufs[b.curSet][n][:0], p...)
	b.bufs[b.curSet][n] = buf
	b.cur = append(b.cur, ipv4.Message{Buffers: [][]byte{buf}, Addr: addr})
	full := n+1 == batchSize/2
	b.mu.Unlock()
	if n == 0 || full {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

func (b *batchConn) flusher() {
	defer close(b.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-b.quit:
			b.flush()
			return
		case <-b.kick:
		}
		// Let the rest of the fan-out burst arrive, unless half a batch
		// is already waiting.
		b.mu.Lock()
		n := len(b.cur)
		b.mu.Unlock()
		if n < batchSize/2 {
			t.Reset(batchDelay)
			select {
			case <-t.C:
			case <-b.kick:
				t.Stop()
			case <-b.quit:
				t.Stop()
				b.flush()
				return
			}
		}
		b.flush()
	}
}

func (b *batchConn) flush() {
	// flushMu keeps one batch in flight: the spare set's buffers are
	// reused only after its WriteBatch returned.
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	out := b.cur
	b.cur, b.spare = b.spare[:0], out
	b.curSet ^= 1
	b.mu.Unlock()
	for len(out) > 0 {
		n, err := b.pc.WriteBatch(out, 0)
		if err != nil || n <= 0 {
			// The first message failed (e.g. an unreachable address):
			// skip it and send the rest.
			b.errors.Add(1)
			out = out[1:]
			continue
		}
		out = out[n:]
		b.sent.Add(uint64(n))
		b.calls.Add(1)
	}
	// If a new kick arrived for writes after the swap, the loop handles it.
	b.mu.Lock()
	if len(b.cur) > 0 {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	b.mu.Unlock()
}

// Close stops the flusher after a last flush and closes the socket.
func (b *batchConn) Close() error {
	select {
	case <-b.quit:
	default:
		close(b.quit)
	}
	<-b.done
	return b.UDPConn.Close()
}
