package thinpool

import (
	"context"

	"github.com/thind-storage/thind/bioprison"
	"github.com/thind-storage/thind/discard"
	"github.com/thind-storage/thind/thinmeta"
)

// Discard unmaps the whole blocks in [off, off+n) and passes the data
// blocks this frees down to the data device as holes. Partial blocks at
// the edges are left alone: a discard is advisory. When it frees blocks
// and passdown is on, it returns once the unmapping is committed and the
// holes are punched, as dm-thin completes a discard only after its
// passdown (process_discard_cell_passdown): right after fstrim the data
// store has shrunk.
func (t *Thin) Discard(ctx context.Context, off, n uint64) error {
	if err := t.checkRange(off, n); err != nil {
		return err
	}
	g, err := discard.NewGeometry(t.p.bs, t.size.Load())
	if err != nil {
		return err
	}
	s, err := g.Split(off, n)
	if err != nil {
		return err
	}
	if s.Blocks.Empty() {
		return nil
	}
	if err := t.p.canChangeMetadata(); err != nil {
		return err
	}
	t.writes.RLock()
	freed, err := t.unmapBlocks(ctx, s.Blocks.Begin, s.Blocks.End)
	t.writes.RUnlock()
	if err != nil {
		return err
	}
	return t.p.awaitPassdown(ctx, freed)
}

// awaitPassdown waits for the commit that frees, and punches, the freed
// blocks a discard queued for passdown. Discards waiting meanwhile share
// that commit. Nothing to wait for when no block was freed (all stayed
// shared, or were unmapped already) or passdown is off. The caller must
// not hold the thin's writes lock: the commit waits for I/O in flight.
func (p *Pool) awaitPassdown(ctx context.Context, freed uint64) error {
	if freed == 0 || p.cfg.NoDiscardPassdown {
		return nil
	}
	return p.commitForPassdown(ctx)
}

// unmapBlocks unmaps virtual blocks [begin, end), a prison range cell at a
// time (at most 1024 blocks, as the kernel's range cells), queues freed
// data blocks for passdown at the next commit, and returns how many it
// freed.
func (t *Thin) unmapBlocks(ctx context.Context, begin, end uint64) (uint64, error) {
	p := t.p
	freed := uint64(0)
	for ch := range (discard.BlockRange{Begin: begin, End: end}).Chunks() {
		key := bioprison.Key{Space: bioprison.Virtual, Dev: t.id, Begin: ch.Begin, End: ch.End}
		c, err := p.lockCell(ctx, key)
		if err != nil {
			return freed, err
		}
		n, err := t.unmapChunk(ctx, ch)
		p.unlockCell(c)
		if err != nil {
			return freed, err
		}
		freed += n
		if p.passdownPending() >= maxPendingPassdown && p.hold.TryLock() {
			// Commit early to bound the pending list, unless someone
			// holds commits (then the list grows until they commit).
			err := p.commitNow(false)
			p.hold.Unlock()
			if err != nil {
				return freed, err
			}
		}
	}
	if freed > 0 && Mode(p.mode.Load()) == ModeOutOfDataSpace && p.hold.TryLock() {
		// Freed blocks become allocatable at the next commit, which
		// wakes the writes waiting for space. Someone holding commits
		// (a catalog operation deleting or shrinking a volume, maybe
		// this very caller) makes that commit itself: waiting for the
		// committer here would wait for the hold, for ever.
		p.commitNow(false)
		p.hold.Unlock()
	}
	return freed, nil
}

// unmapChunk unmaps one chunk, holding its cell, and returns how many data
// blocks it freed. The transaction lock's read side is held throughout,
// so the commit that frees the blocks also holds them for passdown.
func (t *Thin) unmapChunk(ctx context.Context, ch discard.BlockRange) (uint64, error) {
	p := t.p
	p.txn.RLock()
	defer p.txn.RUnlock()
	var blocks []uint64
	err := p.md.WalkMappings(t.id, ch.Begin, ch.End, func(_ uint64, l thinmeta.Lookup) error {
		blocks = append(blocks, l.DataBlock)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(blocks) == 0 {
		return 0, nil
	}
	n, err := p.md.RemoveRange(t.id, ch.Begin, ch.End)
	if err != nil {
		return 0, p.metadataFailed("remove mappings", err)
	}
	p.mdDirty.Store(true)
	t.changed.Store(true)
	t.st.blocksUnmapped.Add(n)
	// Blocks no one else maps are free now, but the last commit may
	// still map them (say, a snapshot's block whose origin copied it on
	// write in this transaction): they are passed down after the next
	// commit, before anything can reuse them.
	freed := uint64(0)
	for _, b := range blocks {
		count, err := p.md.DataBlockCount(b)
		if err != nil {
			return 0, err
		}
		if count == 0 {
			freed++
			if !p.cfg.NoDiscardPassdown {
				p.pendingPassdown(t, b)
			}
		}
	}
	return freed, nil
}

// WriteZeroes makes [off, off+n) read as zeroes: whole blocks are unmapped
// (or, with noHole, provisioned and zeroed), partial blocks have their
// part zeroed where they are mapped.
func (t *Thin) WriteZeroes(ctx context.Context, off, n uint64, noHole, fua bool) error {
	if err := t.checkRange(off, n); err != nil {
		return err
	}
	g, err := discard.NewGeometry(t.p.bs, t.size.Load())
	if err != nil {
		return err
	}
	plan, err := g.WriteZeroes(off, n, noHole)
	if err != nil {
		return err
	}
	t.writes.RLock()
	freed, err := t.zeroPlan(ctx, plan, noHole, fua)
	t.writes.RUnlock()
	if err != nil {
		return err
	}
	if fua && t.changed.Load() {
		return t.p.Commit(ctx)
	}
	// Whole blocks unmapped: answered after their passdown, as a discard.
	return t.p.awaitPassdown(ctx, freed)
}

// zeroPlan carries out plan and returns how many data blocks its
// unmapping freed.
func (t *Thin) zeroPlan(ctx context.Context, plan discard.ZeroPlan, noHole, fua bool) (uint64, error) {
	bs := t.p.bs
	for _, part := range []discard.ByteRange{plan.Head, plan.Tail} {
		if part.Empty() {
			continue
		}
		if err := t.zeroPart(ctx, part.Off/bs, part.Off%bs, part.Len, noHole); err != nil {
			return 0, err
		}
	}
	freed := uint64(0)
	if !plan.Unmap.Empty() {
		if err := t.p.canChangeMetadata(); err != nil {
			return 0, err
		}
		var err error
		if freed, err = t.unmapBlocks(ctx, plan.Unmap.Begin, plan.Unmap.End); err != nil {
			return freed, err
		}
	}
	for v := plan.Provision.Begin; v < plan.Provision.End; v++ {
		if err := t.writeBlock(ctx, v, 0, zeroPayload(bs), fua, nil); err != nil {
			return freed, err
		}
	}
	return freed, nil
}

// zeroPart zeroes n bytes at offset o of block v: nothing to do for an
// unmapped block (it reads as zeroes) unless holes are not allowed.
func (t *Thin) zeroPart(ctx context.Context, v, o, n uint64, noHole bool) error {
	if !noHole {
		_, mapped, err := t.find(v)
		if err != nil {
			return err
		}
		if !mapped {
			// A write racing with us may map it meanwhile; zeroing
			// under the cell settles it.
			return t.zeroIfMapped(ctx, v, o, n)
		}
	}
	return t.writeBlock(ctx, v, o, zeroPayload(n), false, nil)
}

// zeroIfMapped re-checks the mapping under the block's cell.
func (t *Thin) zeroIfMapped(ctx context.Context, v, o, n uint64) error {
	p := t.p
	c, err := p.lockCell(ctx, virtualKey(t.id, v))
	if err != nil {
		return err
	}
	_, mapped, err := t.find(v)
	p.unlockCell(c)
	if err != nil || !mapped {
		return err
	}
	return t.writeBlock(ctx, v, o, zeroPayload(n), false, nil)
}

// UnmapBlocks unmaps virtual blocks [begin, end) of device id, as a
// discard does (freed blocks are passed down after the next commit). The
// device may be open or not.
func (p *Pool) UnmapBlocks(ctx context.Context, id, begin, end uint64) (uint64, error) {
	if err := p.canChangeMetadata(); err != nil {
		return 0, err
	}
	before, err := p.md.MappedBlocks(id)
	if err != nil {
		return 0, err
	}
	p.thinsMu.Lock()
	t := p.thins[id]
	p.thinsMu.Unlock()
	if t == nil {
		t = &Thin{p: p, id: id}
	} else {
		t.writes.RLock()
		defer t.writes.RUnlock()
	}
	// Callers pass end = MaxUint64 for "to the end" (the catalog does
	// when a volume shrinks): stop at the highest mapped block instead of
	// visiting every empty chunk up to 2^64.
	high, mapped, err := p.md.HighestMappedBlock(id)
	if err != nil {
		return 0, err
	}
	if !mapped {
		return 0, nil
	}
	end = min(end, high+1)
	if begin >= end {
		return 0, nil
	}
	if _, err := t.unmapBlocks(ctx, begin, end); err != nil {
		return 0, err
	}
	after, err := p.md.MappedBlocks(id)
	if err != nil {
		return 0, err
	}
	return before - after, nil
}
