package thinpool

import (
	"context"
	"sync"

	"github.com/thind-storage/thind/bioprison"
)

// waiter is a request's place in a prison cell. Requests here run on their
// caller's goroutine, so a waiter is a buffered channel the releasing
// holder signals; the woken request detains again, as the kernel re-queues
// released bios. Waiters are pooled: a detain allocates nothing.
type waiter struct{ wake chan struct{} }

var waiters = sync.Pool{New: func() any { return &waiter{wake: make(chan struct{}, 1)} }}

// cell is a held prison cell.
type cell struct {
	c bioprison.Cell[*waiter]
	w *waiter
}

// lock detains key, waiting while another request holds an overlapping
// cell.
func (p *Pool) lock(ctx context.Context, key bioprison.Key) (cell, error) {
	w := waiters.Get().(*waiter)
	for {
		c, holder, err := p.prison.Detain(key, w)
		if err != nil {
			waiters.Put(w)
			return cell{}, err
		}
		if holder {
			return cell{c, w}, nil
		}
		p.st.prisonWaits.Add(1)
		select {
		case <-w.wake:
		case <-ctx.Done():
			// The waiter stays queued in the cell and will be
			// signalled later: it must not be reused.
			return cell{}, ctx.Err()
		}
	}
}

// unlock releases a cell and wakes the requests that waited in it.
func (p *Pool) unlock(c cell) {
	var buf [8]*waiter
	for _, w := range p.prison.ReleaseNoHolder(c.c, buf[:0]) {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	waiters.Put(c.w)
}

func (p *Pool) virtualKey(dev, b uint64) bioprison.Key {
	return bioprison.BlockKey(bioprison.Virtual, dev, b)
}
