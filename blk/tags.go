package blk

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// cacheLine is the padding unit that keeps hot atomics of different
// submitters off each other's cache lines.
const cacheLine = 64

// tagSet bounds the requests in flight on one hardware queue. It is a
// scalable bitmap after lib/sbitmap.c: the tags are split over several
// words, each on its own cache line, and every submitter starts looking at
// its own hint, so concurrent submitters mostly touch different lines. A
// tag is taken with an atomic OR that reports whether the bit was already
// set (test_and_set_bit_lock) and freed with an atomic AND.
//
// When every tag is in use the submitter sleeps on a FIFO wait list until a
// tag is freed or its context ends; that sleep is the backpressure.
type tagSet struct {
	depth uint32
	shift uint32 // log2 of the bits used per word
	words []tagWord

	nwait atomic.Int32 // waiters on the list; read lock-free by put
	mu    sync.Mutex   // guards the wait list and the free waiter list
	wait  waitList
	spare *tagWaiter // recycled waiters, so sleeping does not allocate

	sleeps atomic.Uint64 // times a submitter had to sleep for a tag

	// waitHook, when set by a test, runs each time a submitter is about
	// to sleep for a tag.
	waitHook func()
}

// tagWord is one word of the bitmap. Bits past the word's share of the
// depth are set at creation and never cleared, so a search only has to look
// for zero bits.
type tagWord struct {
	bits atomic.Uint64
	_    [cacheLine - 8]byte
}

// tagShift picks how many bits of each word to use. Like
// sbitmap_calculate_shift, a small depth is spread over several words (at
// least four bits each) so that it still covers a few cache lines.
func tagShift(depth uint32) uint32 {
	shift := uint32(6)
	if depth >= 4 {
		for 4<<shift > depth {
			shift--
		}
	}
	return shift
}

func newTagSet(depth int) *tagSet {
	t := &tagSet{depth: uint32(depth), shift: tagShift(uint32(depth))}
	per := uint32(1) << t.shift
	n := (t.depth + per - 1) / per
	t.words = make([]tagWord, n)
	for i := range t.words {
		used := min(per, t.depth-uint32(i)*per)
		if used < 64 {
			t.words[i].bits.Store(^uint64(0) << used)
		}
	}
	return t
}

// tryGet takes a free tag without sleeping, starting at *hint and moving
// the hint past the tag taken, so that a submitter keeps walking forward
// through its part of the map instead of fighting others for the first
// free bit.
func (t *tagSet) tryGet(hint *atomic.Uint32) (uint32, bool) {
	h := hint.Load()
	if h >= t.depth {
		h = 0
	}
	mask := uint32(1)<<t.shift - 1
	wi := int(h >> t.shift)
	from := h & mask
	for range t.words {
		if b, ok := t.words[wi].claim(from); ok {
			tag := uint32(wi)<<t.shift | b
			next := tag + 1
			if next >= t.depth {
				next = 0
			}
			hint.Store(next)
			return tag, true
		}
		from = 0
		if wi++; wi == len(t.words) {
			wi = 0
		}
	}
	return 0, false
}

// claim sets a zero bit of the word, preferring bits at or after from
// (then wrapping), and returns its index.
func (w *tagWord) claim(from uint32) (uint32, bool) {
	for {
		free := ^w.bits.Load()
		if free == 0 {
			return 0, false
		}
		pick := free >> from << from
		if pick == 0 {
			pick = free
		}
		b := uint32(bits.TrailingZeros64(pick))
		m := uint64(1) << b
		if w.bits.Or(m)&m == 0 {
			return b, true
		}
		// Another submitter took that bit between the load and the OR;
		// look again.
	}
}

// put frees a tag and wakes one sleeper. The bit is cleared before the
// waiter count is read; a sleeper increments the count before its last
// look at the map, so one of the two always sees the other.
func (t *tagSet) put(tag uint32) {
	w := &t.words[tag>>t.shift]
	w.bits.And(^(uint64(1) << (tag & (1<<t.shift - 1))))
	if t.nwait.Load() > 0 {
		t.wakeOne()
	}
}

// inUse counts the tags currently held.
func (t *tagSet) inUse() int {
	n := 0
	for i := range t.words {
		n += bits.OnesCount64(t.words[i].bits.Load())
	}
	return n - (64*len(t.words) - int(t.depth))
}
