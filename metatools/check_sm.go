package metatools

import (
	"encoding/binary"

	"github.com/thind-storage/thind/spacemap"
)

// dataRefs counts the references the mapping trees make to each data
// block: one per distinct leaf entry, however many devices share the leaf
// (which is what the kernel's data space map holds).
type dataRefs struct {
	nrBlocks uint64
	small    []uint8           // nil for huge devices: then big holds every count
	big      map[uint64]uint32 // counts of 255 and more
}

// denseDataRefs bounds the dense array; past it counts go in a map, whose
// size is bounded by the mappings the metadata can hold.
const denseDataRefs = 1 << 28

func newDataRefs(nrBlocks uint64) *dataRefs {
	d := &dataRefs{nrBlocks: nrBlocks, big: map[uint64]uint32{}}
	if nrBlocks <= denseDataRefs {
		d.small = make([]uint8, nrBlocks)
	}
	return d
}

func (d *dataRefs) add(b uint64) {
	if d.small == nil {
		d.big[b]++
		return
	}
	if d.small[b] < 255 {
		d.small[b]++
		if d.small[b] < 255 {
			return
		}
		d.big[b] = 255
		return
	}
	d.big[b]++
}

func (d *dataRefs) get(b uint64) uint32 {
	if d.small == nil || d.small[b] == 255 {
		return d.big[b]
	}
	return uint32(d.small[b])
}

// smCounts is what a space map stores, as found on disk.
type smCounts struct {
	where    string
	root     spacemap.Root
	bitmaps  []uint64          // bitmap block of each index entry
	big      map[uint64]uint32 // reference count tree
	metadata bool
}

// checkSpaceMap validates a space map's index, bitmaps and reference count
// tree, counting their blocks as metadata references. It returns nil if
// the counts cannot be read.
func (c *checker) checkSpaceMap(where string, root spacemap.Root, metadata bool) *smCounts {
	sm := &smCounts{where: where, root: root, big: map[uint64]uint32{}, metadata: metadata}
	n := spacemap.NrBitmaps(root.NrBlocks)
	if metadata {
		if n > spacemap.MaxMetadataBitmaps {
			c.r.errorf(where, "%d blocks need %d bitmaps, more than the index holds", root.NrBlocks, n)
			return nil
		}
		if !c.w.ref(root.BitmapRoot, where) {
			return nil
		}
		blk, err := c.img.BM.ReadLock(root.BitmapRoot, spacemap.IndexValidator)
		if err != nil {
			c.r.errorAt(root.BitmapRoot, where, "index block: %s", describe(err))
			return nil
		}
		all, _ := spacemap.DecodeMetadataIndex(blk.Data(), spacemap.MaxMetadataBitmaps)
		c.img.BM.Unlock(blk)
		entries := all[:n]
		for i, e := range all[n:] {
			if e.Blocknr != 0 {
				c.r.warnAt(root.BitmapRoot, where, "unused index entry %d is not zero", n+uint64(i))
				break
			}
		}
		for _, e := range entries {
			sm.bitmaps = append(sm.bitmaps, e.Blocknr)
		}
	} else {
		var keys []uint64
		idx := &treeKind{name: where + " index", valueSize: 16, leaf: func(_, key uint64, v []byte) {
			keys = append(keys, key)
			sm.bitmaps = append(sm.bitmaps, spacemap.DecodeIndexEntry(v).Blocknr)
		}}
		if st := c.w.walk(idx, root.BitmapRoot, true, 0, 0, false, 0); st == nil || !st.ok {
			return nil
		}
		for i, k := range keys {
			if k != uint64(i) {
				c.r.errorAt(root.BitmapRoot, where+" index", "entry %d has key %d", i, k)
				return nil
			}
		}
		if uint64(len(keys)) != n {
			c.r.errorAt(root.BitmapRoot, where+" index", "%d entries for %d blocks, need %d", len(keys), root.NrBlocks, n)
			return nil
		}
	}
	ok := true
	for i, b := range sm.bitmaps {
		if !c.w.ref(b, where) {
			ok = false
			continue
		}
		blk, err := c.img.BM.ReadLock(b, spacemap.BitmapValidator)
		if err != nil {
			c.r.errorAt(b, where, "bitmap %d: %s", i, describe(err))
			ok = false
			continue
		}
		c.img.BM.Unlock(blk)
	}
	refTree := &treeKind{name: where + " reference count tree", valueSize: 4, leaf: func(leaf, key uint64, v []byte) {
		count := binary.LittleEndian.Uint32(v)
		switch {
		case key >= root.NrBlocks:
			c.r.errorAt(leaf, where+" reference count tree", "entry for block %d beyond the space map (%d blocks)", key, root.NrBlocks)
		case count < 3:
			c.r.errorAt(leaf, where+" reference count tree", "block %d has count %d, the tree holds only counts above 2", key, count)
		default:
			sm.big[key] = count
		}
	}}
	if st := c.w.walk(refTree, root.RefCountRoot, true, 0, 0, false, 0); st == nil || !st.ok {
		ok = false
	}
	if !ok {
		return nil
	}
	return sm
}

// forEachCount calls fn with every block's stored count, bitmap by bitmap.
func (c *checker) forEachCount(sm *smCounts, fn func(b uint64, count uint32)) {
	for i, loc := range sm.bitmaps {
		blk, err := c.img.BM.ReadLock(loc, spacemap.BitmapValidator)
		if err != nil {
			continue // reported by checkSpaceMap
		}
		data := blk.Data()
		base := uint64(i) * spacemap.EntriesPerBlock
		for e := uint64(0); e < spacemap.EntriesPerBlock; e++ {
			b := base + e
			v := spacemap.BitmapEntry(data, e)
			if b >= sm.root.NrBlocks {
				if v != 0 {
					c.r.errorAt(loc, sm.where, "entry for block %d beyond the space map is %d, not 0", b, v)
				}
				continue
			}
			if v == 3 {
				big, ok := sm.big[b]
				if !ok {
					c.r.errorAt(loc, sm.where, "block %d has bitmap count 3 but no reference count tree entry", b)
				}
				fn(b, big)
				delete(sm.big, b)
				continue
			}
			fn(b, v)
		}
		c.img.BM.Unlock(blk)
	}
	for b, count := range sm.big {
		c.r.errorf(sm.where+" reference count tree", "block %d has count %d in the tree but not 3 in its bitmap", b, count)
	}
}

func (c *checker) compareMetadataCounts(sm *smCounts) {
	var allocated uint64
	c.forEachCount(sm, func(b uint64, count uint32) {
		want := c.w.refs[b]
		if count != want {
			what := "leaked"
			if count < want {
				what = "under-counted"
			}
			c.r.errorAt(b, sm.where, "metadata reference counts differ: expected %d, but got %d (%s)", want, count, what)
		}
		if count > 0 {
			allocated++
		}
	})
	c.r.MetadataBlocksUsed = allocated
	// thin_restore 0.9.0 counts one unused block in nr_allocated; the
	// kernel only uses the figure for free-space reports.
	if allocated != sm.root.NrAllocated {
		c.r.warnf(sm.where, "root says %d blocks allocated, the bitmaps hold %d", sm.root.NrAllocated, allocated)
	}
}

func (c *checker) compareDataCounts(sm *smCounts) {
	var allocated uint64
	c.forEachCount(sm, func(b uint64, count uint32) {
		want := c.data.get(b)
		if count != want {
			c.r.errorf(sm.where, "data block %d: reference count %d, but the mapping trees reference it %d times", b, count, want)
		}
		if count > 0 {
			allocated++
		}
	})
	c.r.DataBlocksUsed = allocated
	if allocated != sm.root.NrAllocated {
		c.r.errorf(sm.where, "root says %d blocks allocated, the bitmaps hold %d", sm.root.NrAllocated, allocated)
	}
}
