package bioprison

import (
	"sync"

	"github.com/thind-storage/thind/internal/invariants"
)

// region is one shard of the prison: a lock, the live cells of the key
// windows that hash to it, and a free list of cells to recycle (the kernel's
// struct prison_region with its rb-tree, plus a per-region mempool).
//
// Live cells never overlap, so ordering them by (space, dev, begin) is a
// total order in which a colliding key sits exactly where it would be
// inserted. A sorted slice is enough: a region holds only the cells in
// flight for its windows, and insertion is a short memmove that allocates
// nothing once the slice has grown.
type region[T any] struct {
	mu    sync.Mutex
	cells []*cell[T]
	free  []*cell[T]
	_     [64]byte // keep neighbouring regions' locks off this cache line
}

// search returns the index of the first live cell that is not wholly before
// k, and whether that cell collides with k. When several live cells overlap
// k (a wide discard key over single-block cells) the lowest one is found;
// the caller queues behind it and meets the others on its next detain.
func (r *region[T]) search(k *Key) (int, bool) {
	lo, hi := 0, len(r.cells)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if before(&r.cells[m].key, k) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(r.cells) && !before(k, &r.cells[lo].key)
}

// insert links a new cell for k at index i, which search returned.
func (r *region[T]) insert(i int, k Key, holder T) *cell[T] {
	var c *cell[T]
	if n := len(r.free); n > 0 {
		c = r.free[n-1]
		r.free[n-1] = nil
		r.free = r.free[:n-1]
	} else {
		c = &cell[T]{region: r}
	}
	c.key = k
	c.holder = holder
	r.cells = append(r.cells, nil)
	copy(r.cells[i+1:], r.cells[i:])
	r.cells[i] = c
	if invariants.Enabled {
		r.assertCells("insert")
	}
	return c
}

// remove unlinks a live cell and recycles it, invalidating every handle on
// it.
func (r *region[T]) remove(c *cell[T]) {
	r.unlink(c)
	r.recycle(c)
}

// unlink takes a live cell out of the region's order, so that new keys no
// longer collide with it.
func (r *region[T]) unlink(c *cell[T]) {
	i, found := r.search(&c.key)
	if !found || r.cells[i] != c {
		panic("bioprison: live cell missing from its region")
	}
	n := copy(r.cells[i:], r.cells[i+1:])
	r.cells[i+n] = nil
	r.cells = r.cells[:i+n]
	if invariants.Enabled {
		r.assertCells("unlink")
	}
}

// recycle clears an unlinked cell and puts it on the free list.
func (r *region[T]) recycle(c *cell[T]) {
	c.reset()
	r.free = append(r.free, c)
}

// lock locks the region of h's cell and returns the cell, panicking if the
// handle is stale: a released cell may be locking other blocks by now.
func (h Cell[T]) lock() *cell[T] {
	c := h.c
	if c == nil {
		panic("bioprison: use of the zero Cell")
	}
	c.region.mu.Lock()
	if c.gen != h.gen {
		c.region.mu.Unlock()
		panic("bioprison: use of a released cell")
	}
	return c
}

// assertCells checks, in invariants builds, what search relies on after
// every insert and unlink: live cells in key order, none overlapping the
// next, each of this region, none with the zero key of a recycled cell.
func (r *region[T]) assertCells(op string) {
	for i, c := range r.cells {
		switch {
		case c.region != r:
			invariants.Violation("bioprison %s: cell %v lives in another region", op, c.key)
		case c.key == (Key{}):
			invariants.Violation("bioprison %s: a recycled cell is still live", op)
		case i > 0 && !before(&r.cells[i-1].key, &c.key):
			invariants.Violation("bioprison %s: cells %v and %v overlap or are out of order", op, r.cells[i-1].key, c.key)
		}
	}
}
