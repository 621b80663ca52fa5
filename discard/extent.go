package discard

import (
	"cmp"
	"slices"
)

// ExtentBuilder merges data blocks into extents for passdown: feed it the
// blocks whose reference count reached zero, in any order, and it returns
// the contiguous runs [Begin, End) to punch out of the backing store, as
// dm-thin's passdown_double_checking_shared_status gathers runs of unshared
// blocks. Blocks fed twice are merged, not doubled.
//
// The zero ExtentBuilder merges without bound; it is not safe for
// concurrent use. Reset it to reuse its memory.
type ExtentBuilder struct {
	// MaxLen, if not zero, caps the blocks in one extent, so that one
	// passdown never asks the backing store for too much at once.
	MaxLen uint64
	// Aligned, with MaxLen, cuts extents at multiples of MaxLen rather
	// than every MaxLen blocks from their start, so that none crosses a
	// MaxLen-aligned boundary: with MaxLen = MaxChunk every extent fits a
	// single prison range cell.
	Aligned bool

	runs   []BlockRange // merged runs while sorted; raw runs otherwise
	sorted bool         // runs are ascending, disjoint and not adjacent
	out    []BlockRange // runs cut by MaxLen, returned by Extents
}

// Add feeds one block.
func (b *ExtentBuilder) Add(block uint64) {
	if block == maxUint64 {
		// [block, block+1) does not fit; the block number is out of any
		// real device, but keep the builder total.
		return
	}
	b.AddRange(BlockRange{block, block + 1})
}

// AddRange feeds every block of r. Ascending input, the common case, is
// merged as it comes; anything else is sorted once, in Extents.
func (b *ExtentBuilder) AddRange(r BlockRange) {
	if r.Empty() {
		return
	}
	n := len(b.runs)
	if n == 0 {
		b.runs = append(b.runs, r)
		b.sorted = true
		return
	}
	last := &b.runs[n-1]
	switch {
	case b.sorted && r.Begin >= last.Begin && r.Begin <= last.End:
		last.End = max(last.End, r.End) // extends or overlaps the last run
	case b.sorted && r.Begin > last.End:
		b.runs = append(b.runs, r)
	default:
		b.runs = append(b.runs, r)
		b.sorted = false
	}
}

// Extents returns the merged extents in ascending order, each cut to MaxLen.
// The slice is the builder's and is valid until the next Add, AddRange or
// Reset.
func (b *ExtentBuilder) Extents() []BlockRange {
	b.normalise()
	if b.MaxLen == 0 {
		return b.runs
	}
	b.out = b.out[:0]
	for _, r := range b.runs {
		for !r.Empty() {
			n := min(r.Len(), b.MaxLen)
			if b.Aligned {
				n = min(r.Len(), b.MaxLen-r.Begin%b.MaxLen)
			}
			b.out = append(b.out, BlockRange{r.Begin, r.Begin + n})
			r.Begin += n
		}
	}
	return b.out
}

// AppendBytes appends the extents as byte ranges of the data device, with
// the given block size, to dst.
func (b *ExtentBuilder) AppendBytes(dst []ByteRange, blockSize uint64) ([]ByteRange, error) {
	if err := checkBlockSize(blockSize); err != nil {
		return dst, err
	}
	for _, r := range b.Extents() {
		br, err := r.bytes(blockSize)
		if err != nil {
			return dst, err
		}
		dst = append(dst, br)
	}
	return dst, nil
}

// Reset empties the builder, keeping its memory and options.
func (b *ExtentBuilder) Reset() {
	b.runs = b.runs[:0]
	b.out = b.out[:0]
	b.sorted = true
}

// normalise sorts and merges runs fed out of order.
func (b *ExtentBuilder) normalise() {
	if b.sorted || len(b.runs) == 0 {
		return
	}
	slices.SortFunc(b.runs, func(x, y BlockRange) int { return cmp.Compare(x.Begin, y.Begin) })
	merged := b.runs[:1]
	for _, r := range b.runs[1:] {
		last := &merged[len(merged)-1]
		if r.Begin <= last.End {
			last.End = max(last.End, r.End)
		} else {
			merged = append(merged, r)
		}
	}
	b.runs = merged
	b.sorted = true
}
