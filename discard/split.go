package discard

// Split is a byte range cut at block boundaries: the whole blocks it covers
// and the partial blocks at either edge.
//
// Head and Tail are the bytes in partial blocks before and after Blocks; a
// range inside one block is all Head. Blocks is empty when no block is
// covered whole. The last block of a device whose size is not a whole
// number of blocks counts as whole when the range covers all of it that
// lies within the device; dm-thin never unmaps that block by discard, but
// its bytes past the end can never be read, so there is nothing to keep.
type Split struct {
	Head   ByteRange
	Blocks BlockRange
	Tail   ByteRange
}

// Empty reports whether the split covers no bytes at all.
func (s Split) Empty() bool { return s.Head.Empty() && s.Blocks.Empty() && s.Tail.Empty() }

// Split cuts the byte range [off, off+length) into whole blocks and partial
// edges, like the kernel's get_bio_block_range. For a discard the engine
// unmaps the whole blocks (chunked with BlockRange.Chunks) and ignores the
// edges. A zero length is a valid, empty request anywhere up to the device
// end.
func (g Geometry) Split(off, length uint64) (Split, error) {
	if err := g.check(off, length); err != nil {
		return Split{}, err
	}
	if length == 0 {
		b := divUp(off, g.blockSize)
		return Split{Head: ByteRange{Off: off}, Blocks: BlockRange{b, b}, Tail: ByteRange{Off: off}}, nil
	}
	return split(g.blockSize, g.devSize, off, length), nil
}

// check validates a request range against the device.
func (g Geometry) check(off, length uint64) error {
	switch {
	case off > maxUint64-length:
		return &RangeError{Off: off, Len: length, DevSize: g.devSize, Err: ErrOverflow}
	case off+length > g.devSize:
		return &RangeError{Off: off, Len: length, DevSize: g.devSize, Err: ErrOutOfRange}
	}
	return nil
}

// split does the arithmetic for any block size, so that tests can check it
// byte by byte with tiny blocks. It requires 0 < n and off+n <= dev, and
// dev rounded up to a block must fit in 64 bits.
func split(bs, dev, off, n uint64) Split {
	end := off + n
	b := divUp(off, bs) // first block starting at or after off
	e := end / bs       // first block not wholly before end
	if end == dev {
		e = divUp(end, bs) // the device's partial last block is whole too
	}
	if e < b {
		e = b // the range is inside one block
	}
	s := Split{
		Head:   ByteRange{Off: off, Len: min(b*bs, end) - off},
		Blocks: BlockRange{b, e},
		Tail:   ByteRange{Off: end},
	}
	if t := max(e*bs, off); t < end {
		s.Tail = ByteRange{Off: t, Len: end - t}
	}
	return s
}
