package spacemap

import "encoding/binary"

// A bitmap holds 2-bit reference counts; 3 means "look in the reference
// count tree". Entry e lives in little-endian word e/32; within it, bit
// 2j is the high bit and bit 2j+1 the low bit (sm_lookup_bitmap).

const entriesPerWord = 32

// BitmapEntry returns entry e of a bitmap block: the one decoder of the
// bitmap layout, for the space maps and the offline checker.
func BitmapEntry(block []byte, e uint64) uint32 {
	w := binary.LittleEndian.Uint64(block[bitmapHeaderSize+8*(e/entriesPerWord):])
	j := (e % entriesPerWord) * 2
	hi := uint32(w>>j) & 1
	lo := uint32(w>>(j+1)) & 1
	return hi<<1 | lo
}

// SetBitmapEntry stores v (0..3) in entry e of a bitmap block.
func SetBitmapEntry(block []byte, e uint64, v uint32) {
	off := bitmapHeaderSize + 8*(e/entriesPerWord)
	w := binary.LittleEndian.Uint64(block[off:])
	j := (e % entriesPerWord) * 2
	w &^= 3 << j
	w |= uint64(v>>1&1) << j
	w |= uint64(v&1) << (j + 1)
	binary.LittleEndian.PutUint64(block[off:], w)
}

// wordFull reports whether all 32 entries of word w are non-zero.
func wordFull(w uint64) bool {
	// Fold each 2-bit entry's two bits together; every pair must have
	// at least one bit set.
	const low = 0x5555555555555555
	return (w|w>>1)&low == low
}

// bitmapFindFree returns the first zero entry in [begin, end).
func bitmapFindFree(block []byte, begin, end uint64) (uint64, bool) {
	for e := begin; e < end; {
		if e%entriesPerWord == 0 && e+entriesPerWord <= end {
			w := binary.LittleEndian.Uint64(block[bitmapHeaderSize+8*(e/entriesPerWord):])
			if wordFull(w) {
				e += entriesPerWord
				continue
			}
		}
		if BitmapEntry(block, e) == 0 {
			return e, true
		}
		e++
	}
	return 0, false
}
