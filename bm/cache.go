package bm

import (
	"sync"
	"sync/atomic"
)

// Lock states of a cached block (entry.state).
const (
	stateFree    = 0  // cached, unlocked
	stateWriter  = -1 // write-locked
	stateEvicted = -2 // gone from the cache; a stale pointer must retry
	// > 0: that many readers
)

// entry is one cached block. A read lock on a cached, validated block is
// taken without any mutex: a CAS on state. Misses, write locks and
// evictions run under the shard's mutex. Because the fast path takes no
// mutex, whoever takes an entry out of the free state does it with a CAS:
// a write lock moves it from free to writer, an eviction from free to
// evicted, and either fails if a reader got in first.
type entry struct {
	loc   uint64
	data  []byte
	state atomic.Int64
	ref   atomic.Bool // CLOCK bit: used since the eviction hand last passed
	vbox  atomic.Pointer[validatorBox]
	dirty atomic.Bool
	prev  *entry // eviction order, under the shard mutex; head is newest
	next  *entry
}

// validatorBox lets an entry publish its validator atomically.
type validatorBox struct{ v Validator }

func (e *entry) validator() Validator {
	if b := e.vbox.Load(); b != nil {
		return b.v
	}
	return nil
}

// shard is one slice of the cache, with its own lock and eviction list, so
// that misses of unrelated blocks do not contend.
type shard struct {
	mu       sync.Mutex
	blocks   sync.Map // uint64 -> *entry; read without mu, written under it
	count    int
	head     *entry
	tail     *entry
	capacity int
	free     [][]byte // recycled block buffers
	hits     atomic.Uint64
	_        [64]byte // keep neighbouring shards' hot fields apart
}

func (s *shard) get(b uint64) *entry {
	if x, ok := s.blocks.Load(b); ok {
		return x.(*entry)
	}
	return nil
}

func (s *shard) pushFront(e *entry) {
	e.prev = nil
	e.next = s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *shard) newBuffer() []byte {
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free = s.free[:n-1]
		return b
	}
	return make([]byte, BlockSize)
}

// add caches e, under mu.
func (s *shard) add(e *entry) {
	s.blocks.Store(e.loc, e)
	s.count++
	s.pushFront(e)
}

// remove drops an entry already claimed (state evicted), under mu.
func (s *shard) remove(e *entry) {
	s.unlink(e)
	s.blocks.Delete(e.loc)
	s.count--
	s.free = append(s.free, e.data)
	e.data = nil
}

// forEach calls fn for every cached entry, under mu.
func (s *shard) forEach(fn func(*entry)) {
	for e := s.head; e != nil; {
		next := e.next
		fn(e)
		e = next
	}
}
