package discard

import "iter"

// MaxChunk is the most blocks one chunk holds, and the alignment no chunk
// crosses. It equals bioprison.MaxRange, so that every chunk can be locked
// with a single range cell, as break_up_discard_bio arranges in the kernel.
const MaxChunk = 1024

// NextChunk splits off the first chunk of r: from r.Begin up to the next
// multiple of MaxChunk or r.End, whichever is first. For an empty r both
// results are empty.
func (r BlockRange) NextChunk() (chunk, rest BlockRange) {
	if r.Empty() {
		return BlockRange{r.Begin, r.Begin}, BlockRange{r.Begin, r.Begin}
	}
	// Measure the room to the boundary rather than computing the boundary,
	// which would overflow in the last window of the 64-bit space.
	room := MaxChunk - r.Begin%MaxChunk
	cut := r.Begin + min(r.Len(), room)
	return BlockRange{r.Begin, cut}, BlockRange{cut, r.End}
}

// Chunks yields r in order as NextChunk cuts it: pieces of at most MaxChunk
// blocks, none crossing a MaxChunk-aligned boundary. Use it for the virtual
// range of a discard and again for each data range it maps to.
func (r BlockRange) Chunks() iter.Seq[BlockRange] {
	return func(yield func(BlockRange) bool) {
		for !r.Empty() {
			var c BlockRange
			c, r = r.NextChunk()
			if !yield(c) {
				return
			}
		}
	}
}
