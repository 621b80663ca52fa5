package spacemap

import "encoding/binary"

// freeRuns calls fn for each maximal run [b, e) of blocks with a zero
// count in [begin, end), in order. Bitmaps whose index entry says they are
// wholly free or wholly used are not read.
func (l *ll) freeRuns(begin, end uint64, fn func(b, e uint64) error) error {
	end = min(end, l.nrBlocks)
	if begin >= end {
		return nil
	}
	var runStart, runEnd uint64 // the run being built; empty when equal
	emit := func(b, e uint64) error {
		if b == runEnd && runStart != runEnd {
			runEnd = e // extends the run across a bitmap boundary
			return nil
		}
		if runStart != runEnd {
			if err := fn(runStart, runEnd); err != nil {
				return err
			}
		}
		runStart, runEnd = b, e
		return nil
	}
	for i := begin / EntriesPerBlock; i*EntriesPerBlock < end; i++ {
		base := i * EntriesPerBlock
		lo, hi := max(begin, base)-base, min(end, base+EntriesPerBlock)-base
		ie := l.entries[i]
		entries := min(uint64(EntriesPerBlock), l.nrBlocks-base)
		switch {
		case ie.NrFree == 0:
			continue
		case uint64(ie.NrFree) == entries:
			if err := emit(base+lo, base+hi); err != nil {
				return err
			}
			continue
		}
		blk, err := l.tm.ReadLock(ie.Blocknr, BitmapValidator)
		if err != nil {
			return err
		}
		err = bitmapFreeRuns(blk.Data(), lo, hi, func(b, e uint64) error { return emit(base+b, base+e) })
		l.tm.Unlock(blk)
		if err != nil {
			return err
		}
	}
	if runStart != runEnd {
		return fn(runStart, runEnd)
	}
	return nil
}

// bitmapFreeRuns calls fn for each run of zero entries in [begin, end) of
// a bitmap block, a word of 32 entries at a time where it can.
func bitmapFreeRuns(block []byte, begin, end uint64, fn func(b, e uint64) error) error {
	start, open := uint64(0), false
	for e := begin; e < end; {
		if e%entriesPerWord == 0 && e+entriesPerWord <= end {
			w := binary.LittleEndian.Uint64(block[bitmapHeaderSize+8*(e/entriesPerWord):])
			if w == 0 {
				if !open {
					start, open = e, true
				}
				e += entriesPerWord
				continue
			}
			if wordFull(w) {
				if open {
					if err := fn(start, e); err != nil {
						return err
					}
					open = false
				}
				e += entriesPerWord
				continue
			}
		}
		free := BitmapEntry(block, e) == 0
		switch {
		case free && !open:
			start, open = e, true
		case !free && open:
			if err := fn(start, e); err != nil {
				return err
			}
			open = false
		}
		e++
	}
	if open {
		return fn(start, end)
	}
	return nil
}

// FreeRuns calls fn for each maximal run [b, e) of free blocks in
// [begin, end), in order: free in the current transaction.
func (d *Disk) FreeRuns(begin, end uint64, fn func(b, e uint64) error) error {
	return d.ll.freeRuns(begin, end, fn)
}
