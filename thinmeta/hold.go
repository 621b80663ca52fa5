package thinmeta

// Held data blocks. A discard's passdown punches the blocks a commit freed
// after that commit, outside the engine's transaction lock; until the
// punch is done a block must not be handed to another device, or its new
// data could be punched away. The kernel keeps them back with a reference
// from the commit to the passdown's end (dm_pool_inc_data_range in
// process_prepared_discard_passdown_pt1); here the hold is in core, so a
// crash meanwhile leaks nothing, and it outlives an abort, which reopens
// the space map but leaves the punch in flight.

// HoldDataBlocks keeps data blocks [begin, end) from allocation until
// ReleaseDataBlocks. They must be free (the engine holds the blocks the
// last commit freed, under its exclusive transaction lock).
func (p *Pool) HoldDataBlocks(begin, end uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = map[uint64]struct{}{}
	}
	for b := begin; b < end; b++ {
		p.held[b] = struct{}{}
	}
}

// ReleaseDataBlocks makes held data blocks [begin, end) allocatable again.
func (p *Pool) ReleaseDataBlocks(begin, end uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for b := begin; b < end; b++ {
		delete(p.held, b)
	}
}

// isHeld reports whether b is held. Called with p.mu held.
func (p *Pool) isHeld(b uint64) bool {
	_, ok := p.held[b]
	return ok
}

// freeDataBlocks is what can be allocated: held blocks are free in the
// space map but not allocatable. Called with p.mu held.
func (p *Pool) freeDataBlocks() uint64 {
	free, held := p.dsm.NrFree(), uint64(len(p.held))
	if held >= free {
		return 0
	}
	return free - held
}
