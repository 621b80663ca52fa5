package blk

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// swQueue is a software queue, the analogue of the kernel's per-CPU
// blk_mq_ctx. Go has no stable CPU id to index by, so a submitter is mapped
// to a software queue by hashing something it owns and keeps using: the
// address of its data buffer for the synchronous calls, of its Request for
// Submit, and a round-robin id for a Plug (see Dispatcher.swqFor). That is
// stable for a submitter that reuses its buffers, needs no shared counter,
// and spreads unrelated submitters apart, which is all the per-CPU index
// buys the kernel: submitters rarely share a queue's lock, tag hint, usage
// counter or statistics.
//
// The queue holds units (single or merged requests) inserted by
// asynchronous and plugged submitters until a worker of its hardware queue
// takes them all at once.
type swQueue struct {
	hw   *hwQueue
	bit  uint64        // this queue's bit in hw.busy
	hint atomic.Uint32 // where the next tag search starts, like sbitmap's per-CPU alloc_hint

	// usage counts requests between entry and completion, a sharded
	// q_usage_counter: Drain waits for every queue's count to reach zero.
	usage   atomic.Int64
	drained chan struct{} // receives a token when usage drops to zero while closing

	mu         sync.Mutex
	head, tail *cmd // pending units, linked through cmd.next

	stats swStats
	_     [cacheLine]byte
}

// insert appends the units head..tail, holding n requests, and makes sure
// a worker will look. The backlog grows before the units become visible so
// that it never goes negative.
func (sq *swQueue) insert(head, tail *cmd, n int) {
	h := sq.hw
	h.backlog.Add(int64(n))
	sq.mu.Lock()
	if sq.tail != nil {
		sq.tail.next = head
	} else {
		sq.head = head
	}
	sq.tail = tail
	sq.mu.Unlock()
	h.busy.Or(sq.bit)
	h.kickWorker()
}

// take removes every pending unit.
func (sq *swQueue) take() (head, tail *cmd) {
	sq.mu.Lock()
	head, tail = sq.head, sq.tail
	sq.head, sq.tail = nil, nil
	sq.mu.Unlock()
	return head, tail
}

// enter admits a request unless the dispatcher is closing. The count is
// raised before the closing flag is read and Drain sets the flag before
// reading the count, so either the request is refused or Drain waits for
// it.
func (sq *swQueue) enter(closing *atomic.Bool) bool {
	sq.usage.Add(1)
	if closing.Load() {
		sq.exit(closing)
		return false
	}
	return true
}

// exit ends a request admitted by enter.
func (sq *swQueue) exit(closing *atomic.Bool) {
	if sq.usage.Add(-1) == 0 && closing.Load() {
		select {
		case sq.drained <- struct{}{}:
		default: // a token is already waiting
		}
	}
}

// fibonacci is 2^64 divided by the golden ratio, the multiplier of
// Fibonacci hashing: it spreads keys that differ only in a few bits (like
// buffer addresses a page apart) over the whole range.
const fibonacci = 0x9E3779B97F4A7C15

// swqFor maps a submitter's key to its software queue.
func (d *Dispatcher) swqFor(key uintptr) *swQueue {
	i, _ := bits.Mul64(uint64(key)*fibonacci, uint64(len(d.sw)))
	return d.sw[i]
}
