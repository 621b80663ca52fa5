package discard

// ZeroPlan says how to make a byte range read back as zeros (WRITE_ZEROES,
// NBD_CMD_WRITE_ZEROES): unmap whole blocks, since an unmapped block reads
// as zeros, and write zeros over the partial blocks at the edges.
type ZeroPlan struct {
	// Unmap holds the whole blocks to unmap. It is empty when holes are
	// not allowed.
	Unmap BlockRange
	// Provision holds the whole blocks to keep or make allocated and fill
	// with zeros, when holes are not allowed (NBD_CMD_FLAG_NO_HOLE).
	Provision BlockRange
	// Head and Tail are the bytes of partial blocks to overwrite with
	// zeros. A partial block that is not mapped already reads as zeros
	// and needs nothing, unless holes are not allowed.
	Head, Tail ByteRange
}

// WriteZeroes plans zeroing [off, off+length). With noHole the whole blocks
// go to Provision instead of Unmap. The errors are Split's.
func (g Geometry) WriteZeroes(off, length uint64, noHole bool) (ZeroPlan, error) {
	s, err := g.Split(off, length)
	if err != nil {
		return ZeroPlan{}, err
	}
	p := ZeroPlan{Head: s.Head, Tail: s.Tail}
	none := BlockRange{s.Blocks.Begin, s.Blocks.Begin}
	if noHole {
		p.Provision, p.Unmap = s.Blocks, none
	} else {
		p.Unmap, p.Provision = s.Blocks, none
	}
	return p, nil
}
