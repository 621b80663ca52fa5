package nbd

import (
	"fmt"
	"sync"
)

// The buffer budget bounds the payload bytes the whole server holds
// (Options.BufferBudget): WRITE data read ahead, READ data and BLOCK_STATUS
// replies until they are written. Only a connection's reader takes bytes,
// before it reads a payload or queues a READ, so a client that stops
// reading its replies soon stops being read and cannot grow memory.
//
// Stalled clients must not starve the others, so the budget is split:
//
//   - every connection in transmission owns a reservation of reserve
//     bytes that nobody else may use; MaxConnections reservations together
//     are an eighth of the budget at most;
//   - the rest is shared; a connection's holdings above its reservation
//     come from it, up to Options.ConnBufferBudget per connection.
//
// A connection can so always hold reserve bytes (with the defaults
// 128 KiB: 32 4 KiB requests), whatever the others hold; a client that
// needs more waits for shared bytes, which stalled clients give back when
// ReplyTimeout drops them.
type memBudget struct {
	mu          sync.Mutex
	sharedLimit int64
	sharedUsed  int64
	used        int64 // every connection's holdings, reservations included
	peak        int64 // highest used since the last trim
	reserve     int64 // per connection
	connLimit   int64
	waiters     int           // readers waiting for shared bytes
	wake        chan struct{} // closed when shared bytes are freed and waiters > 0

	// full is called (outside mu) when a reader starts waiting because
	// the shared bytes are spent: a limit hit.
	full func()
	// low is called (outside mu) when the holdings fall below a quarter
	// of trimAbove after a peak of at least trimAbove: a burst is over.
	low       func()
	trimAbove int64
}

// maxReserve caps the reservation of one connection.
const maxReserve = 1 << 20

func newMemBudget(o Options) (*memBudget, error) {
	if o.BufferBudget < 2*MaxPayload {
		return nil, fmt.Errorf("nbd: buffer budget of %d bytes: want at least %d (twice the maximum payload)", o.BufferBudget, 2*MaxPayload)
	}
	reserve := min(o.BufferBudget/8/int64(o.MaxConnections), maxReserve) &^ 4095
	return &memBudget{
		sharedLimit: o.BufferBudget - reserve*int64(o.MaxConnections),
		reserve:     reserve,
		connLimit:   o.ConnBufferBudget,
		wake:        make(chan struct{}),
		trimAbove:   o.BufferBudget / 8,
	}, nil
}

// connBudget is one connection's part of the budget. Its reader acquires,
// its writer (any worker) releases.
type connBudget struct {
	g     *memBudget
	used  int64         // under g.mu
	freed chan struct{} // a token per release of this connection's bytes
}

func (g *memBudget) conn() *connBudget {
	return &connBudget{g: g, freed: make(chan struct{}, 1)}
}

// shared is the part of holdings h that comes from the shared bytes.
func (g *memBudget) shared(h int64) int64 { return max(0, h-g.reserve) }

// acquire takes n bytes, waiting while they do not fit. A request larger
// than the per-connection cap fits when the connection holds nothing
// else. It gives up, returning false, when abort or done is closed.
func (b *connBudget) acquire(n int64, abort, done <-chan struct{}) bool {
	g := b.g
	counted := false
	for {
		g.mu.Lock()
		if b.take(n) {
			g.mu.Unlock()
			return true
		}
		capped := b.used > 0 && b.used+n > g.connLimit
		wake := g.wake
		if !capped {
			g.waiters++
		}
		g.mu.Unlock()
		if !capped && !counted && g.full != nil {
			counted = true
			g.full()
		}
		select {
		case <-b.freed:
		case <-wake:
		case <-abort:
			return false
		case <-done:
			return false
		}
	}
}

// tryAcquire takes n bytes if they fit now.
func (b *connBudget) tryAcquire(n int64) bool {
	g := b.g
	g.mu.Lock()
	defer g.mu.Unlock()
	return b.take(n)
}

// take takes n bytes if they fit; g.mu is held.
func (b *connBudget) take(n int64) bool {
	g := b.g
	more := g.shared(b.used+n) - g.shared(b.used)
	if (b.used > 0 && b.used+n > g.connLimit) || g.sharedUsed+more > g.sharedLimit {
		return false
	}
	b.used += n
	g.sharedUsed += more
	g.used += n
	g.peak = max(g.peak, g.used)
	return true
}

// release gives back n bytes.
func (b *connBudget) release(n int64) {
	if n == 0 {
		return
	}
	g := b.g
	g.mu.Lock()
	less := g.shared(b.used) - g.shared(b.used-n)
	b.used -= n
	g.sharedUsed -= less
	g.used -= n
	if less > 0 && g.waiters > 0 {
		close(g.wake)
		g.wake = make(chan struct{})
		g.waiters = 0
	}
	burstOver := g.used < g.trimAbove/4 && g.peak >= g.trimAbove
	if burstOver {
		g.peak = 0
	}
	g.mu.Unlock()
	select {
	case b.freed <- struct{}{}:
	default:
	}
	if burstOver && g.low != nil {
		g.low()
	}
}

// held returns the bytes all connections hold now.
func (g *memBudget) held() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.used
}
