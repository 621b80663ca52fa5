package nbd

import (
	"math/bits"
	"runtime/debug"
	"sync"
	"time"
)

// Payload buffers come from power-of-two size classes between 4 KiB and
// the 32 MiB maximum payload, kept on free lists the server's connections
// share, so steady-state I/O of a given size allocates nothing.
//
// The free lists are bounded (a quarter of the buffer budget in all), not
// sync.Pools: a sync.Pool keeps whatever a burst put in it until two
// garbage collections have passed, and an idle daemon collects rarely,
// so the memory of a burst stayed. After a burst (the budget's holdings
// back near zero from a peak, see memBudget.low) the server empties the
// lists and returns the freed memory to the kernel (trim).
const (
	minBufShift = 12
	maxBufShift = 25
	numClasses  = maxBufShift - minBufShift + 1
)

type bufPool struct {
	mu     sync.Mutex
	free   [numClasses][]*[]byte
	pooled int64 // bytes on the free lists
	limit  int64

	trimMu    sync.Mutex
	trimTimer *time.Timer
}

func newBufPool(limit int64) *bufPool { return &bufPool{limit: limit} }

// bufClass is the size class holding n bytes (n <= 1<<maxBufShift).
func bufClass(n int) int {
	if n <= 1<<minBufShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}

// get returns a buffer of length n. The lists hold pointers to slices so
// that put does not allocate.
func (p *bufPool) get(n int) *[]byte {
	c := bufClass(n)
	p.mu.Lock()
	if l := p.free[c]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		p.free[c] = l[:len(l)-1]
		p.pooled -= int64(cap(*b))
		p.mu.Unlock()
		*b = (*b)[:n]
		return b
	}
	p.mu.Unlock()
	b := make([]byte, n, 1<<(c+minBufShift))
	return &b
}

// put returns a buffer obtained from get; beyond the limit it is left to
// the garbage collector.
func (p *bufPool) put(b *[]byte) {
	size := int64(cap(*b))
	p.mu.Lock()
	if p.pooled+size <= p.limit {
		c := bufClass(cap(*b))
		p.free[c] = append(p.free[c], b)
		p.pooled += size
	}
	p.mu.Unlock()
}

// trimDelay is how long after a burst the memory is returned: long
// enough that a client pausing between bursts keeps its buffers.
const trimDelay = time.Second

// scheduleTrim returns the burst's memory to the kernel trimDelay from
// now, unless a trim is already pending.
func (p *bufPool) scheduleTrim(stillLow func() bool) {
	p.trimMu.Lock()
	defer p.trimMu.Unlock()
	if p.trimTimer != nil {
		return
	}
	p.trimTimer = time.AfterFunc(trimDelay, func() {
		p.trimMu.Lock()
		p.trimTimer = nil
		p.trimMu.Unlock()
		if stillLow() {
			p.trim()
		}
	})
}

// trim empties the free lists and hands the freed memory back to the
// kernel: a garbage collection, then the runtime's scavenger at once
// instead of over minutes.
func (p *bufPool) trim() {
	p.mu.Lock()
	for c := range p.free {
		clear(p.free[c])
		p.free[c] = nil
	}
	p.pooled = 0
	p.mu.Unlock()
	debug.FreeOSMemory()
}
