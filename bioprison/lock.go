package bioprison

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// Locker is the blocking face of the prison, for callers that run one
// goroutine per request anyway: Lock waits in a cell, like a detained
// inmate, until the key is theirs. It is built on a Prison whose inmates are
// the waiting goroutines, so it has the same keys, collisions and sharding,
// and hands a cell straight to the next waiter whose key the cell covers.
//
// A Locker and a Prison do not see each other's cells; guard a given key
// space with one or the other.
type Locker struct {
	p    *Prison[*lockWaiter]
	pool sync.Pool // *lockWaiter; each owns a channel worth reusing
}

// NewLocker returns a Locker with no keys held.
func NewLocker(o Options) *Locker {
	return &Locker{p: New[*lockWaiter](o)}
}

// A waiter's state, written under its cell's region lock by whoever decides
// its fate. Exactly one signal goes on ch per wait, under the same lock, so
// a waiter that gives up can tell whether a signal is owed to it.
const (
	waiting = iota
	granted // promoted to holder of the cell it waited in
	retry   // the cell was released or handed to a waiter not covering this key
)

type lockWaiter struct {
	key    Key
	state  int
	ch     chan int      // capacity 1
	ticket atomic.Uint64 // counts unlocks, to refuse a second one
}

// Lock waits until no other holder's key overlaps k, then returns with k
// held. The caller must call unlock exactly once. If ctx ends first, Lock
// returns ctx's error and holds nothing; it never starts waiting when ctx
// has already ended.
func (l *Locker) Lock(ctx context.Context, k Key) (unlock func(), err error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w, _ := l.pool.Get().(*lockWaiter)
	if w == nil {
		w = &lockWaiter{ch: make(chan int, 1)}
	}
	w.key = k
	for {
		w.state = waiting
		c, isHolder, err := l.p.Detain(k, w)
		if err != nil {
			l.pool.Put(w)
			return nil, err
		}
		if isHolder {
			return l.unlocker(w, c), nil
		}
		select {
		case s := <-w.ch:
			if s == granted {
				return l.unlocker(w, c), nil
			}
			// The cell went away or went to someone else: queue again.
		case <-ctx.Done():
			l.abandon(w, c)
			l.pool.Put(w)
			return nil, ctx.Err()
		}
	}
}

// unlocker returns the unlock function for w holding c. Calling it twice is
// a bug in the caller, reported by a panic as sync.Mutex does. The ticket
// catches that even after w has been reused for another Lock, and costs no
// allocation beyond the closure itself.
func (l *Locker) unlocker(w *lockWaiter, c Cell[*lockWaiter]) func() {
	ticket := w.ticket.Load()
	return func() {
		if !w.ticket.CompareAndSwap(ticket, ticket+1) {
			panic("bioprison: unlock of an unlocked key")
		}
		l.handOff(c)
		l.pool.Put(w)
	}
}

// handOff passes the cell to its oldest waiter whose key it covers, telling
// the waiters skipped on the way to queue again; with no such waiter the
// cell is removed.
func (l *Locker) handOff(c Cell[*lockWaiter]) {
	cl := c.lock()
	r := cl.region
	defer r.mu.Unlock()
	for len(cl.waiters) > 0 {
		next := cl.popWaiter()
		if cl.key.Contains(next.key) {
			cl.holder = next
			next.state = granted
			next.ch <- granted
			return
		}
		next.state = retry
		next.ch <- retry
	}
	r.remove(cl)
}

// abandon withdraws w, whose context ended, from cell c. If w is still
// queued it just leaves the queue. If the cell was handed to it meanwhile it
// hands it on, and if it was told to retry there is nothing to undo; either
// way the signal sent to it is drained so the waiter can be reused.
func (l *Locker) abandon(w *lockWaiter, c Cell[*lockWaiter]) {
	cl := c.c
	r := cl.region
	r.mu.Lock()
	switch w.state {
	case waiting:
		// The cell cannot have been released while w waits in it: release
		// paths signal every waiter first.
		for i, x := range cl.waiters {
			if x == w {
				cl.waiters = slices.Delete(cl.waiters, i, i+1)
				r.mu.Unlock()
				return
			}
		}
		r.mu.Unlock()
		panic("bioprison: waiting locker missing from its cell")
	case granted:
		r.mu.Unlock()
		<-w.ch
		l.handOff(c)
	default:
		r.mu.Unlock()
		<-w.ch
	}
}
