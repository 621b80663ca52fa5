package bm

import "sync"

// entry is one cached block. Its lock state and pins are guarded by the
// shard's mutex; its data by the block lock it represents.
type entry struct {
	loc       uint64
	data      []byte
	validator Validator // the validator the content passed, nil if unchecked
	readers   int32
	writer    bool
	dirty     bool
	prev      *entry // LRU neighbours; head is the most recently used
	next      *entry
}

func (e *entry) pinned() bool { return e.readers > 0 || e.writer }

// shard is one slice of the cache, with its own lock and LRU list, so that
// lookups of unrelated blocks do not contend.
type shard struct {
	mu       sync.Mutex
	blocks   map[uint64]*entry
	head     *entry
	tail     *entry
	capacity int
	free     [][]byte // recycled block buffers
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

func (s *shard) touch(e *entry) {
	if s.head != e {
		s.unlink(e)
		s.pushFront(e)
	}
}

func (s *shard) newBuffer() []byte {
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free = s.free[:n-1]
		return b
	}
	return make([]byte, BlockSize)
}

func (s *shard) remove(e *entry) {
	s.unlink(e)
	delete(s.blocks, e.loc)
	s.free = append(s.free, e.data)
	e.data = nil
}
