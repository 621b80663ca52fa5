package bioprison

// cell is one lock on a key: the inmate holding it and the inmates waiting
// behind it, in arrival order. Cells are recycled through their region's free
// list, so a cell always belongs to the same region and gen tells its
// incarnations apart.
type cell[T any] struct {
	region  *region[T] // immutable: cells never move between regions
	gen     uint64     // bumped on every free; a handle with an old gen is stale
	key     Key
	holder  T
	waiters []T
}

// maxKeptWaiters bounds the waiter capacity a recycled cell keeps, so one
// burst of contention does not pin a large slice for the prison's lifetime.
const maxKeptWaiters = 64

// reset drops every reference the cell holds so that freed cells do not keep
// callers' requests alive.
func (c *cell[T]) reset() {
	var zero T
	c.holder = zero
	clear(c.waiters)
	if cap(c.waiters) > maxKeptWaiters {
		c.waiters = nil
	} else {
		c.waiters = c.waiters[:0]
	}
	c.key = Key{}
	c.gen++
}

// popWaiter removes and returns the oldest waiter. The caller checked there
// is one.
func (c *cell[T]) popWaiter() T {
	w := c.waiters[0]
	n := copy(c.waiters, c.waiters[1:])
	var zero T
	c.waiters[n] = zero
	c.waiters = c.waiters[:n]
	return w
}

// Cell is a handle on a detained cell, returned by Detain and TryDetain and
// passed back to the release methods. It is a small value; copy it freely.
// Once the cell is released every copy of the handle is stale, and using one
// panics: the cell may already be locking someone else's blocks.
//
// The zero Cell is not a cell.
type Cell[T any] struct {
	c   *cell[T]
	gen uint64
}
