package metatools

import (
	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/spacemap"
)

// bitmapCounts collects counts for a space map's bitmaps in ascending
// block order and writes them out, one block per 16320 entries.
type bitmapCounts struct {
	nrBlocks  uint64
	bitmaps   [][]byte // lazily allocated: untouched bitmaps stay nil
	allocated uint64
}

func newBitmapCounts(nrBlocks uint64) *bitmapCounts {
	return &bitmapCounts{nrBlocks: nrBlocks, bitmaps: make([][]byte, spacemap.NrBitmaps(nrBlocks))}
}

// set records block b's count (3 stands for every count above two).
func (c *bitmapCounts) set(b uint64, count uint32) {
	i, e := b/spacemap.EntriesPerBlock, b%spacemap.EntriesPerBlock
	if c.bitmaps[i] == nil {
		c.bitmaps[i] = make([]byte, bm.BlockSize)
	}
	spacemap.SetBitmapEntry(c.bitmaps[i], e, min(count, 3))
	if count > 0 {
		c.allocated++
	}
}

// write writes every bitmap and returns the index entries, with the
// kernel's hints: free entries counted against the full 16320 even in a
// partial last bitmap, and the first free entry.
func (c *bitmapCounts) write(w *blockWriter) ([]spacemap.IndexEntry, error) {
	entries := make([]spacemap.IndexEntry, len(c.bitmaps))
	for i, data := range c.bitmaps {
		if data == nil {
			data = make([]byte, bm.BlockSize)
		}
		used, firstFree := uint32(0), uint32(spacemap.EntriesPerBlock)
		for e := uint64(0); e < spacemap.EntriesPerBlock; e++ {
			if spacemap.BitmapEntry(data, e) != 0 {
				used++
			} else if firstFree == spacemap.EntriesPerBlock {
				firstFree = uint32(e)
			}
		}
		b, err := w.Alloc()
		if err != nil {
			return nil, err
		}
		if err := w.Write(b, data, spacemap.BitmapValidator); err != nil {
			return nil, err
		}
		entries[i] = spacemap.IndexEntry{Blocknr: b, NrFree: spacemap.EntriesPerBlock - used, NoneFreeBefore: firstFree}
		c.bitmaps[i] = nil
	}
	return entries, nil
}
