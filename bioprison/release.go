package bioprison

// Release removes the cell and appends its holder and then its waiters, in
// arrival order, to dst (the kernel's dm_cell_release). The caller re-queues
// them; waiters must detain again, since the blocks they wanted may now be
// mapped differently. Pass a reused dst to release without allocating.
func (p *Prison[T]) Release(c Cell[T], dst []T) []T {
	cl := c.lock()
	r := cl.region
	dst = append(dst, cl.holder)
	dst = append(dst, cl.waiters...)
	r.remove(cl)
	r.mu.Unlock()
	return dst
}

// ReleaseNoHolder removes the cell and appends only its waiters to dst (the
// kernel's dm_cell_release_no_holder): the holder has been dealt with by
// the caller, e.g. completed or remapped and issued.
func (p *Prison[T]) ReleaseNoHolder(c Cell[T], dst []T) []T {
	cl := c.lock()
	r := cl.region
	dst = append(dst, cl.waiters...)
	r.remove(cl)
	r.mu.Unlock()
	return dst
}

// VisitRelease calls visit for each waiter, oldest first, and then removes
// the cell, all under the region's lock (the kernel's dm_cell_visit_release).
// Use it when something must happen to the waiters before any new inmate can
// detain their blocks: dm-thin takes a shared-read entry of a DeferredSet for
// each released read here, so that a break-sharing copy queued by the next
// writer waits for those reads. visit must be quick and must not call back
// into the prison (the lock is held; it would deadlock). The holder is not
// visited.
func (p *Prison[T]) VisitRelease(c Cell[T], visit func(waiter T)) {
	cl := c.lock()
	r := cl.region
	defer r.mu.Unlock()
	for _, w := range cl.waiters {
		visit(w)
	}
	r.remove(cl)
}

// Error removes the cell and calls end(inmate, err) for the holder and then
// each waiter (the kernel's dm_cell_error), outside the lock, so end may
// complete requests and even detain again.
func (p *Prison[T]) Error(c Cell[T], err error, end func(inmate T, err error)) {
	cl := c.lock()
	r := cl.region
	// Unlink the cell but keep its contents: the detached cell is ours
	// alone, so end can run without the lock and without copying the
	// inmates out. The cell is recycled afterwards.
	r.unlink(cl)
	cl.gen++ // every handle is stale from here on
	r.mu.Unlock()

	end(cl.holder, err)
	for _, w := range cl.waiters {
		end(w, err)
	}

	r.mu.Lock()
	r.recycle(cl)
	r.mu.Unlock()
}

// PromoteOrRelease hands the cell to its oldest waiter, which becomes the
// holder and is returned with promoted true; the handle stays valid and the
// caller passes it on with the new holder. If nobody waits the cell is
// removed and promoted is false (the kernel's dm_cell_promote_or_release).
//
// The cell keeps its key. That is right when every waiter asked for the
// same range, as with single-block cells; a waiter whose range is not within
// the cell's owns only the cell's blocks once promoted and should be
// released to detain again instead.
func (p *Prison[T]) PromoteOrRelease(c Cell[T]) (holder T, promoted bool) {
	cl := c.lock()
	r := cl.region
	defer r.mu.Unlock()
	if len(cl.waiters) == 0 {
		r.remove(cl)
		var zero T
		return zero, false
	}
	cl.holder = cl.popWaiter()
	return cl.holder, true
}
