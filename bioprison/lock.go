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
// A waiter whose context ends leaves the cell's queue, or, if the cell was
// handed to it at that moment, hands it on: a cancelled Lock never leaves a
// waiter behind nor keeps a key.
//
// A Locker and a Prison do not see each other's cells; guard a given key
// space with one or the other.
type Locker struct {
	p     *Prison[*lockWaiter]
	pool  sync.Pool // *lockWaiter; each owns a channel worth reusing
	waits atomic.Uint64
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

// Held is a key that Lock returned: pass it to Unlock exactly once. It is a
// small value; the zero Held holds nothing.
type Held struct {
	w      *lockWaiter
	c      Cell[*lockWaiter]
	ticket uint64
}

// Lock waits until no other holder's key overlaps k, then returns with k
// held. If ctx ends first, Lock returns ctx's error and holds nothing; it
// never starts waiting when ctx has already ended. Lock allocates nothing
// once its waiters have been pooled.
func (l *Locker) Lock(ctx context.Context, k Key) (Held, error) {
	if err := k.Validate(); err != nil {
		return Held{}, err
	}
	if err := ctx.Err(); err != nil {
		return Held{}, err
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
			return Held{}, err
		}
		if isHolder {
			return l.held(w, c), nil
		}
		l.waits.Add(1)
		select {
		case s := <-w.ch:
			if s == granted {
				return l.held(w, c), nil
			}
			// The cell went away or went to someone else: queue again.
		case <-ctx.Done():
			l.abandon(w, c)
			l.pool.Put(w)
			return Held{}, ctx.Err()
		}
	}
}

func (l *Locker) held(w *lockWaiter, c Cell[*lockWaiter]) Held {
	return Held{w: w, c: c, ticket: w.ticket.Load()}
}

// Unlock releases a key that Lock returned, handing its cell to the next
// waiter it covers. Unlocking twice is a bug in the caller, reported by a
// panic as sync.Mutex does; the ticket catches it even after the waiter has
// been reused for another Lock.
func (l *Locker) Unlock(h Held) {
	if h.w == nil {
		panic("bioprison: unlock of the zero Held")
	}
	if !h.w.ticket.CompareAndSwap(h.ticket, h.ticket+1) {
		panic("bioprison: unlock of an unlocked key")
	}
	l.handOff(h.c)
	l.pool.Put(h.w)
}

// Stats counts the live cells and the waiters queued in them.
func (l *Locker) Stats() Stats { return l.p.Stats() }

// Waits counts the Locks that had to wait, since the Locker was made (a
// Lock that queued again after a release counts each time).
func (l *Locker) Waits() uint64 { return l.waits.Load() }

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
