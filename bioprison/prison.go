package bioprison

import "math/bits"

// DefaultRegions is the number of lock shards a prison gets when Options
// leaves Regions at zero (the kernel started with 64 before scaling it by
// CPU count; a few dozen idle mutexes cost nothing).
const DefaultRegions = 64

// Options configures a Prison.
type Options struct {
	// Regions is the number of lock shards, rounded up to a power of two.
	// Zero means DefaultRegions.
	Regions int
}

// Prison holds cells keyed by block ranges. T is the inmate type, opaque to
// the prison: typically a pointer to the caller's request. The prison never
// blocks and starts no goroutines; callers re-queue released inmates
// themselves. A Prison is safe for concurrent use.
type Prison[T any] struct {
	regions []region[T]
	mask    uint64
}

// New returns an empty prison.
func New[T any](o Options) *Prison[T] {
	n := o.Regions
	if n <= 0 {
		n = DefaultRegions
	}
	n = 1 << bits.Len(uint(n-1))
	return &Prison[T]{regions: make([]region[T], n), mask: uint64(n - 1)}
}

// region picks the shard for k. It depends only on the space, device and
// window of k, so colliding keys always share a shard; mixing in the device
// keeps the same window of different thins apart.
func (p *Prison[T]) region(k *Key) *region[T] {
	h := k.window() ^ (k.Dev * 0x9e3779b97f4a7c15) ^ uint64(k.Space)<<61
	h ^= h >> 29
	return &p.regions[h&p.mask]
}

// Detain puts inmate in the cell for k (the kernel's dm_bio_detain). If no
// live cell collides with k, a new cell is made with inmate as its holder
// and isHolder is true: the caller goes on to do the work and later releases
// the cell. Otherwise inmate joins the colliding cell's waiters, isHolder is
// false, and the caller must leave inmate alone until a release hands it
// back; c then names the cell waited in, for information only, since its
// holder may release it at any moment. The error is non-nil only for an
// invalid key.
func (p *Prison[T]) Detain(k Key, inmate T) (c Cell[T], isHolder bool, err error) {
	if err := k.Validate(); err != nil {
		return Cell[T]{}, false, err
	}
	r := p.region(&k)
	r.mu.Lock()
	i, found := r.search(&k)
	// Take the handle under the lock: once unlocked, the holder may
	// release the cell and its generation moves on.
	if found {
		cl := r.cells[i]
		cl.waiters = append(cl.waiters, inmate)
		h := Cell[T]{cl, cl.gen}
		r.mu.Unlock()
		return h, false, nil
	}
	cl := r.insert(i, k, inmate)
	h := Cell[T]{cl, cl.gen}
	r.mu.Unlock()
	return h, true, nil
}

// TryDetain makes inmate the holder of a new cell for k if no live cell
// collides with k, and otherwise does nothing and returns ok false. It is
// for work that would rather skip a busy range than queue behind it, as
// dm-thin's discard passdown skips data ranges already locked.
func (p *Prison[T]) TryDetain(k Key, inmate T) (c Cell[T], ok bool, err error) {
	if err := k.Validate(); err != nil {
		return Cell[T]{}, false, err
	}
	r := p.region(&k)
	r.mu.Lock()
	defer r.mu.Unlock()
	i, found := r.search(&k)
	if found {
		return Cell[T]{}, false, nil
	}
	cl := r.insert(i, k, inmate)
	return Cell[T]{cl, cl.gen}, true, nil
}

// Key returns the key the cell locks.
func (p *Prison[T]) Key(c Cell[T]) Key {
	cl := c.lock()
	defer cl.region.mu.Unlock()
	return cl.key
}

// Holder returns the cell's current holder.
func (p *Prison[T]) Holder(c Cell[T]) T {
	cl := c.lock()
	defer cl.region.mu.Unlock()
	return cl.holder
}

// Stats is a snapshot of a prison's occupancy, for metrics and for spotting
// cells that are never released.
type Stats struct {
	Cells   int // live cells, each with one holder
	Waiters int // inmates queued behind holders
}

// Stats counts live cells and waiters, locking one region at a time; the
// totals are exact only when the prison is quiet.
func (p *Prison[T]) Stats() Stats {
	var s Stats
	for i := range p.regions {
		r := &p.regions[i]
		r.mu.Lock()
		s.Cells += len(r.cells)
		for _, c := range r.cells {
			s.Waiters += len(c.waiters)
		}
		r.mu.Unlock()
	}
	return s
}
