package metadata

import "sync/atomic"

// lookupCache remembers recent mappings so that a lookup of a hot block
// skips the two-level B-tree walk. It is a direct-mapped table of fixed
// size, so its memory does not grow with the volumes.
//
// Lookups take no lock; fills hold the pool lock's read side, many at
// once; changes hold its write side. A slot is written under its own
// sequence count (odd while being written: a fill takes it by CAS, a
// change, which no fill can race, by adding one) and a lookup trusts a
// slot only if the count is even and the same before and after reading
// it. A slot also records its device's generation: removing a range or a
// device just moves the generation on, leaving stale slots unmatched.
type lookupCache struct {
	slots []cacheSlot
	mask  uint64
}

type cacheSlot struct {
	seq   atomic.Uint64
	key   atomic.Uint64 // dev<<40 | vblock, 0 for empty
	value atomic.Uint64 // block_time
	gen   atomic.Uint64
}

// cacheSlots sizes the table: 64K slots of 32 bytes.
const cacheSlots = 1 << 16

// gens hands out device generations; never reused, so a slot can never
// match a device created after it was filled.
var gens atomic.Uint64

func newGen() uint64 { return gens.Add(1) }

func newLookupCache() *lookupCache {
	return &lookupCache{slots: make([]cacheSlot, cacheSlots), mask: cacheSlots - 1}
}

// cacheKey packs a device and virtual block; false if they do not fit
// (such lookups bypass the cache).
func cacheKey(dev, vblock uint64) (uint64, bool) {
	if dev > MaxDevID || vblock >= 1<<40 {
		return 0, false
	}
	return dev<<40 | vblock | 1<<63, true
}

func (c *lookupCache) slot(key uint64) *cacheSlot {
	return &c.slots[(key*0x9E3779B97F4A7C15>>40)&c.mask]
}

// get returns the cached value of key, filled at generation gen.
func (c *lookupCache) get(key, gen uint64) (uint64, bool) {
	s := c.slot(key)
	seq := s.seq.Load()
	if seq&1 != 0 {
		return 0, false
	}
	k, v, g := s.key.Load(), s.value.Load(), s.gen.Load()
	if s.seq.Load() != seq || k != key || g != gen {
		return 0, false
	}
	return v, true
}

// fill stores a value found by a lookup, unless another reader is filling
// the slot.
func (c *lookupCache) fill(key, value, gen uint64) {
	s := c.slot(key)
	seq := s.seq.Load()
	if seq&1 != 0 || !s.seq.CompareAndSwap(seq, seq+1) {
		return
	}
	s.key.Store(key)
	s.value.Store(value)
	s.gen.Store(gen)
	s.seq.Store(seq + 2)
}

// set records a mapping changed under the write lock. No fill runs then,
// but lock-free lookups may: the count is odd while the slot changes.
func (c *lookupCache) set(key, value, gen uint64) {
	s := c.slot(key)
	s.seq.Add(1)
	s.key.Store(key)
	s.value.Store(value)
	s.gen.Store(gen)
	s.seq.Add(1)
}

// forget drops key, under the write lock.
func (c *lookupCache) forget(key uint64) {
	s := c.slot(key)
	if s.key.Load() == key {
		s.seq.Add(1)
		s.key.Store(0)
		s.seq.Add(1)
	}
}

// deviceView is what a lock-free lookup needs of a device: its cache
// generation and its snapshot time, changed under the write lock.
type deviceView struct {
	gen             atomic.Uint64
	snapshottedTime atomic.Uint32
}

// publishViews makes the current set of devices visible to lock-free
// lookups; none after a failure or close. Called under the write lock
// whenever a device comes or goes.
func (p *Pool) publishViews() {
	views := make(map[uint64]*deviceView, len(p.devices))
	if !p.failed {
		for id, d := range p.devices {
			views[id] = d.view
		}
	}
	p.views.Store(&views)
}
