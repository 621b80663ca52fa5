package blk

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// hwQueue is a hardware queue, the analogue of blk_mq_hw_ctx: a tag set
// bounding its requests in flight, the commands those tags index, the
// software queues mapped to it, and workers that issue queued requests.
type hwQueue struct {
	d    *Dispatcher
	idx  int
	tags *tagSet
	cmds []cmd // cmds[tag], like tags->static_rqs
	swqs []*swQueue

	// busy has a bit per software queue with pending units, like
	// hctx->ctx_map, so workers look only at queues with work.
	busy atomic.Uint64
	// backlog counts requests inserted and not yet issued. Synchronous
	// requests issue directly only while it is zero: with a backlog the
	// queue is busy and jumping it would starve queued requests.
	backlog atomic.Int64

	kick chan struct{} // capacity 1: "there may be work"

	mu         sync.Mutex
	head, tail *cmd // dispatch list, like hctx->dispatch
}

func newHWQueue(d *Dispatcher, idx, depth int) *hwQueue {
	h := &hwQueue{d: d, idx: idx, tags: newTagSet(depth), cmds: make([]cmd, depth), kick: make(chan struct{}, 1)}
	for i := range h.cmds {
		h.cmds[i].tag = uint32(i)
		h.cmds[i].done = make(chan error, 1)
	}
	return h
}

// kickWorker wakes a worker unless a wake-up is already pending. A worker
// that finds more work than it takes kicks the next one, so wake-ups chain
// as far as there is work and no further.
func (h *hwQueue) kickWorker() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// work is a worker goroutine: it issues units until the dispatcher stops.
// Each worker owns the iovec scratch space its merged calls need, so
// issuing does not allocate.
func (h *hwQueue) work(wg *sync.WaitGroup) {
	defer wg.Done()
	iovs := make([][]byte, 0, h.d.cfg.MaxSegments)
	for {
		if u := h.next(); u != nil {
			h.d.dispatch(u, &iovs)
			continue
		}
		select {
		case <-h.kick:
		case <-h.d.stop:
			return
		}
	}
}

// next takes one unit from the dispatch list, refilling the list from the
// busy software queues when it is empty (blk_mq_flush_busy_ctxs).
func (h *hwQueue) next() *cmd {
	h.mu.Lock()
	if h.head == nil {
		h.refill()
	}
	u := h.head
	if u != nil {
		h.head = u.next
		if h.head == nil {
			h.tail = nil
		}
		u.next = nil
	}
	more := h.head != nil
	h.mu.Unlock()
	if more {
		h.kickWorker()
	}
	return u
}

// refill moves the pending units of every busy software queue to the
// dispatch list. Called with h.mu held.
func (h *hwQueue) refill() {
	busy := h.busy.Swap(0)
	for busy != 0 {
		i := bits.TrailingZeros64(busy)
		busy &= busy - 1
		head, tail := h.swqs[i].take()
		if head == nil {
			continue // the bit was set after an earlier refill took the units
		}
		if h.tail != nil {
			h.tail.next = head
		} else {
			h.head = head
		}
		h.tail = tail
	}
}
