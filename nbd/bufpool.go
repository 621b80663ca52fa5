package nbd

import (
	"math/bits"
	"sync"
)

// Payload buffers come from power-of-two size classes between 4 KiB and
// the 32 MiB maximum payload, each a sync.Pool shared by all connections,
// so steady-state I/O of a given size allocates nothing.
const (
	minBufShift = 12
	maxBufShift = 25
)

var bufPools [maxBufShift - minBufShift + 1]sync.Pool

// bufClass is the size class holding n bytes (n <= 1<<maxBufShift).
func bufClass(n int) int {
	if n <= 1<<minBufShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}

// getBuf returns a buffer of length n from the pools. The pools hold
// pointers to slices so that Put does not allocate.
func getBuf(n int) *[]byte {
	c := bufClass(n)
	if p, ok := bufPools[c].Get().(*[]byte); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, 1<<(c+minBufShift))
	return &b
}

// putBuf returns a buffer obtained from getBuf.
func putBuf(p *[]byte) {
	bufPools[bufClass(cap(*p))].Put(p)
}

// budget bounds the payload bytes a connection holds at once (WRITE data
// read ahead and READ data not yet sent). Only the connection's reader
// acquires, so a single wake-up channel is enough; the writer releases.
type budget struct {
	mu    sync.Mutex
	limit int64
	used  int64
	freed chan struct{}
}

func newBudget(limit int64) *budget {
	return &budget{limit: limit, freed: make(chan struct{}, 1)}
}

// acquire takes n bytes, waiting for releases while the budget is spent. A
// request larger than the whole budget waits until nothing else is held,
// so a budget below the maximum payload cannot deadlock. It gives up when
// abort is closed.
func (b *budget) acquire(n int64, abort <-chan struct{}) bool {
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.limit {
			b.used += n
			b.mu.Unlock()
			return true
		}
		b.mu.Unlock()
		select {
		case <-b.freed:
		case <-abort:
			return false
		}
	}
}

func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	select {
	case b.freed <- struct{}{}:
	default:
	}
}
