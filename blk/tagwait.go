package blk

import (
	"context"
	"sync/atomic"
)

// tagWaiter is one submitter sleeping for a tag. The channel carries one
// wake-up; waiters are recycled through tagSet.spare so that sleeping, which
// is the normal state of a saturated queue, does not allocate.
type tagWaiter struct {
	ch         chan struct{}
	prev, next *tagWaiter
	queued     bool
}

// waitList is a FIFO of sleeping submitters; FIFO so that a submitter that
// has waited longest is woken first and none starves.
type waitList struct{ head, tail *tagWaiter }

func (l *waitList) push(w *tagWaiter) {
	w.prev, w.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
}

func (l *waitList) remove(w *tagWaiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next = nil, nil
}

// get takes a tag, sleeping while the set is exhausted. Only the sleep
// honours ctx: a free tag is taken even if ctx has ended, since the caller
// checks ctx before submitting.
func (t *tagSet) get(ctx context.Context, hint *atomic.Uint32) (uint32, error) {
	if tag, ok := t.tryGet(hint); ok {
		return tag, nil
	}
	return t.sleep(ctx, hint)
}

func (t *tagSet) sleep(ctx context.Context, hint *atomic.Uint32) (uint32, error) {
	w := t.enqueue(nil)
	defer t.recycle(w)
	for {
		// Look once more after joining the list: a put that ran before we
		// joined did not see us.
		if tag, ok := t.tryGet(hint); ok {
			t.leave(w)
			return tag, nil
		}
		t.sleeps.Add(1)
		if t.waitHook != nil {
			t.waitHook()
		}
		select {
		case <-w.ch:
			// put dequeued us; join again before looking, for the same
			// reason as above.
			t.enqueue(w)
		case <-ctx.Done():
			t.leave(w)
			return 0, ctx.Err()
		}
	}
}

// enqueue puts w (or a recycled or new waiter if w is nil) on the list.
func (t *tagSet) enqueue(w *tagWaiter) *tagWaiter {
	t.mu.Lock()
	if w == nil {
		if w = t.spare; w != nil {
			t.spare = w.next
			w.next = nil
		} else {
			w = &tagWaiter{ch: make(chan struct{}, 1)}
		}
	}
	t.wait.push(w)
	w.queued = true
	t.nwait.Add(1)
	t.mu.Unlock()
	return w
}

// leave takes w off the list. If a put already dequeued it, the wake-up it
// carries was meant for a tag that w will not use, so it is passed on.
func (t *tagSet) leave(w *tagWaiter) {
	t.mu.Lock()
	if w.queued {
		t.wait.remove(w)
		w.queued = false
		t.nwait.Add(-1)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	<-w.ch // sent by wakeOne right after it dequeued w
	t.wakeOne()
}

func (t *tagSet) recycle(w *tagWaiter) {
	t.mu.Lock()
	w.next = t.spare
	t.spare = w
	t.mu.Unlock()
}

// wakeOne wakes the longest sleeper. lib/sbitmap.c wakes in batches to
// save wake-ups; with one wake-up per freed tag the woken submitter is
// guaranteed a chance at the tag, and a Go channel send is cheap.
func (t *tagSet) wakeOne() {
	t.mu.Lock()
	w := t.wait.head
	if w == nil {
		t.mu.Unlock()
		return
	}
	t.wait.remove(w)
	w.queued = false
	t.nwait.Add(-1)
	t.mu.Unlock()
	w.ch <- struct{}{}
}
