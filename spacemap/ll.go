package spacemap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/btree"
	"github.com/thind-storage/thind/tm"
)

// ErrNoSpace is returned when no block is free.
var ErrNoSpace = errors.New("space map: no free blocks")

// indexKind tells where a space map keeps its index entries: the data
// space map in a B-tree, the metadata space map in one index block.
type indexKind int

const (
	diskIndex indexKind = iota
	metadataIndex
)

// ll is the on-disk format both space maps share (struct ll_disk): bitmaps
// of 2-bit counts, their index, and a B-tree of counts above two. Index
// entries are held in core, like the kernel's metadata index and its
// index-entry cache for the data space map, and written back at commit.
type ll struct {
	tm           *tm.Manager
	kind         indexKind
	nrBlocks     uint64
	nrAllocated  uint64
	bitmapRoot   uint64
	refCountRoot uint64
	entries      []IndexEntry
	dirty        map[uint64]struct{} // changed entries (both kinds)
	refInfo      btree.Info
	indexInfo    btree.Info
}

func newLL(t *tm.Manager, kind indexKind) *ll {
	return &ll{
		tm:        t,
		kind:      kind,
		dirty:     make(map[uint64]struct{}),
		refInfo:   btree.Info{TM: t, Levels: 1, Value: btree.ValueType{Size: 4}},
		indexInfo: btree.Info{TM: t, Levels: 1, Value: btree.ValueType{Size: indexEntrySize}},
	}
}

// snapshot returns a copy that keeps reading the state as of now: the
// committed state, once taken at commit (the kernel's old_ll).
func (l *ll) snapshot() *ll {
	c := *l
	c.entries = slices.Clone(l.entries)
	c.dirty = nil
	return &c
}

func (l *ll) root() Root {
	return Root{NrBlocks: l.nrBlocks, NrAllocated: l.nrAllocated, BitmapRoot: l.bitmapRoot, RefCountRoot: l.refCountRoot}
}

func (l *ll) checkRange(b uint64) error {
	if b >= l.nrBlocks {
		return fmt.Errorf("space map: block %d beyond end (%d blocks)", b, l.nrBlocks)
	}
	return nil
}

// lookupBitmap returns b's 2-bit entry.
func (l *ll) lookupBitmap(b uint64) (uint32, error) {
	if err := l.checkRange(b); err != nil {
		return 0, err
	}
	ie := l.entries[b/EntriesPerBlock]
	blk, err := l.tm.ReadLock(ie.Blocknr, BitmapValidator)
	if err != nil {
		return 0, err
	}
	v := BitmapEntry(blk.Data(), b%EntriesPerBlock)
	l.tm.Unlock(blk)
	return v, nil
}

func (l *ll) lookupBig(b uint64) (uint32, error) {
	var v [4]byte
	if err := btree.Lookup(&l.refInfo, l.refCountRoot, []uint64{b}, v[:]); err != nil {
		if errors.Is(err, btree.ErrNotFound) {
			return 0, fmt.Errorf("space map: block %d has bitmap count 3 but no reference count entry: %w", b, errCorrupt)
		}
		return 0, err
	}
	return binary.LittleEndian.Uint32(v[:]), nil
}

// lookup returns b's reference count.
func (l *ll) lookup(b uint64) (uint32, error) {
	v, err := l.lookupBitmap(b)
	if err != nil || v < 3 {
		return v, err
	}
	return l.lookupBig(b)
}

// findFree returns the lowest block in [begin, end) with a zero count,
// skipping bitmaps whose hint says they are full.
func (l *ll) findFree(begin, end uint64) (uint64, error) {
	end = min(end, l.nrBlocks)
	if begin >= end {
		return 0, ErrNoSpace
	}
	first, last := begin/EntriesPerBlock, (end-1)/EntriesPerBlock
	for i := first; i <= last; i++ {
		ie := l.entries[i]
		if ie.NrFree == 0 {
			continue
		}
		lo := uint64(0)
		if i == first {
			lo = begin % EntriesPerBlock
		}
		lo = max(lo, uint64(ie.NoneFreeBefore))
		hi := uint64(EntriesPerBlock)
		if i == last {
			hi = (end-1)%EntriesPerBlock + 1
		}
		if lo >= hi {
			continue
		}
		blk, err := l.tm.ReadLock(ie.Blocknr, BitmapValidator)
		if err != nil {
			return 0, err
		}
		e, ok := bitmapFindFree(blk.Data(), lo, hi)
		l.tm.Unlock(blk)
		if ok {
			return i*EntriesPerBlock + e, nil
		}
	}
	return 0, ErrNoSpace
}

// findCommonFree returns the lowest block in [begin, end) free both now
// and in old, the committed state: a block freed in this transaction is
// still reachable from the committed superblock, so it must not be reused
// before the next commit (Linux commit 4feaef830de7). pending, if set,
// vetoes blocks with queued reference changes.
func findCommonFree(old, cur *ll, begin, end uint64, pending func(uint64) bool) (uint64, error) {
	for begin < end {
		b, err := cur.findFree(begin, end)
		if err != nil {
			return 0, err
		}
		busy := pending != nil && pending(b)
		if !busy && b < old.nrBlocks {
			c, err := old.lookupBitmap(b)
			if err != nil {
				return 0, err
			}
			busy = c != 0
		}
		if !busy {
			return b, nil
		}
		begin = b + 1
	}
	return 0, ErrNoSpace
}

type allocEvent int

const (
	eventNone allocEvent = iota
	eventAlloc
	eventFree
)

// mutate changes b's count to fn(old count) (sm_ll_mutate).
func (l *ll) mutate(b uint64, fn func(old uint32) (uint32, error)) (allocEvent, error) {
	if err := l.checkRange(b); err != nil {
		return eventNone, err
	}
	index, bit := b/EntriesPerBlock, b%EntriesPerBlock
	blk, _, err := l.tm.Shadow(l.entries[index].Blocknr, BitmapValidator)
	if err != nil {
		return eventNone, err
	}
	l.setBitmapBlock(index, blk.Location())
	old := BitmapEntry(blk.Data(), bit)
	if old > 2 {
		if old, err = l.lookupBig(b); err != nil {
			l.tm.Unlock(blk)
			return eventNone, err
		}
	}
	count, err := fn(old)
	if err != nil {
		l.tm.Unlock(blk)
		return eventNone, fmt.Errorf("block %d: %w", b, err)
	}
	if count <= 2 {
		SetBitmapEntry(blk.Data(), bit, count)
		l.tm.Unlock(blk)
		if old > 2 {
			if l.refCountRoot, err = btree.Remove(&l.refInfo, l.refCountRoot, []uint64{b}); err != nil {
				return eventNone, err
			}
		}
	} else {
		SetBitmapEntry(blk.Data(), bit, 3)
		l.tm.Unlock(blk)
		var v [4]byte
		binary.LittleEndian.PutUint32(v[:], count)
		if l.refCountRoot, _, err = btree.Insert(&l.refInfo, l.refCountRoot, []uint64{b}, v[:]); err != nil {
			return eventNone, err
		}
	}
	ie := &l.entries[index]
	switch {
	case count > 0 && old == 0:
		l.nrAllocated++
		if ie.NrFree > 0 {
			ie.NrFree--
		}
		if uint64(ie.NoneFreeBefore) == bit {
			ie.NoneFreeBefore = uint32(bit + 1)
		}
		l.dirty[index] = struct{}{}
		return eventAlloc, nil
	case count == 0 && old > 0:
		l.nrAllocated--
		ie.NrFree++
		ie.NoneFreeBefore = min(ie.NoneFreeBefore, uint32(bit))
		l.dirty[index] = struct{}{}
		return eventFree, nil
	}
	return eventNone, nil
}

func (l *ll) setBitmapBlock(index, loc uint64) {
	if l.entries[index].Blocknr != loc {
		l.entries[index].Blocknr = loc
		l.dirty[index] = struct{}{}
	}
}

var errCorrupt = bm.ErrCorruption

func incCount(old uint32) (uint32, error) {
	if old == ^uint32(0) {
		return 0, errors.New("reference count overflow")
	}
	return old + 1, nil
}

func decCount(old uint32) (uint32, error) {
	if old == 0 {
		return 0, errors.New("unable to decrement a reference count below 0")
	}
	return old - 1, nil
}

func (l *ll) inc(b uint64) (allocEvent, error) { return l.mutate(b, incCount) }
func (l *ll) dec(b uint64) (allocEvent, error) { return l.mutate(b, decCount) }

// extend adds extra blocks, with new zeroed bitmaps where needed. The
// kernel gives every new entry nr_free = EntriesPerBlock, even a partial
// last bitmap; so does this.
func (l *ll) extend(extra uint64) error {
	newNr := l.nrBlocks + extra
	if newNr < l.nrBlocks {
		return errors.New("space map: size overflow")
	}
	old, n := NrBitmaps(l.nrBlocks), NrBitmaps(newNr)
	if l.kind == metadataIndex && n > MaxMetadataBitmaps {
		return fmt.Errorf("space map too large: %d blocks need %d bitmaps, the index holds %d", newNr, n, MaxMetadataBitmaps)
	}
	// Set first: allocating the bitmaps may look at the new size.
	l.nrBlocks = newNr
	for i := old; i < n; i++ {
		blk, err := l.tm.NewBlock(BitmapValidator)
		if err != nil {
			return err
		}
		loc := blk.Location()
		l.tm.Unlock(blk)
		l.entries = append(l.entries, IndexEntry{Blocknr: loc, NrFree: EntriesPerBlock})
		l.dirty[i] = struct{}{}
	}
	return nil
}

// commit writes the changed index entries: into a shadow of the index
// block (metadata), or into the index B-tree (data).
func (l *ll) commit() error {
	if len(l.dirty) == 0 {
		return nil
	}
	if l.kind == metadataIndex {
		blk, _, err := l.tm.Shadow(l.bitmapRoot, IndexValidator)
		if err != nil {
			return err
		}
		// Shadowing may have changed entries (it allocates from this
		// very space map); they are final now.
		err = EncodeMetadataIndex(blk.Data(), l.entries)
		l.bitmapRoot = blk.Location()
		l.tm.Unlock(blk)
		if err != nil {
			return err
		}
		clear(l.dirty)
		return nil
	}
	keys := make([]uint64, 0, len(l.dirty))
	for i := range l.dirty {
		keys = append(keys, i)
	}
	slices.Sort(keys)
	var v [indexEntrySize]byte
	for _, i := range keys {
		l.entries[i].Encode(v[:])
		root, _, err := btree.Insert(&l.indexInfo, l.bitmapRoot, []uint64{i}, v[:])
		if err != nil {
			return err
		}
		l.bitmapRoot = root
	}
	clear(l.dirty)
	return nil
}

// open loads the index entries of a committed space map.
func (l *ll) open(r Root) error {
	l.nrBlocks, l.nrAllocated, l.bitmapRoot, l.refCountRoot = r.NrBlocks, r.NrAllocated, r.BitmapRoot, r.RefCountRoot
	n := NrBitmaps(r.NrBlocks)
	if l.kind == metadataIndex {
		blk, err := l.tm.ReadLock(r.BitmapRoot, IndexValidator)
		if err != nil {
			return fmt.Errorf("metadata space map index: %w", err)
		}
		defer l.tm.Unlock(blk)
		entries, err := DecodeMetadataIndex(blk.Data(), n)
		if err != nil {
			return err
		}
		l.entries = entries
		return nil
	}
	l.entries = make([]IndexEntry, 0, n)
	err := btree.Walk(&l.indexInfo, r.BitmapRoot, func(keys []uint64, v []byte) error {
		if keys[0] != uint64(len(l.entries)) {
			return fmt.Errorf("data space map index: key %d where %d was expected: %w", keys[0], len(l.entries), errCorrupt)
		}
		l.entries = append(l.entries, DecodeIndexEntry(v))
		return nil
	})
	if err != nil {
		return fmt.Errorf("data space map index: %w", err)
	}
	if uint64(len(l.entries)) != n {
		return fmt.Errorf("data space map index: %d entries for %d blocks (need %d): %w", len(l.entries), r.NrBlocks, n, errCorrupt)
	}
	return nil
}
