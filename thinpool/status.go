package thinpool

import (
	"context"

	"github.com/thind-storage/thind/thinmeta"
)

// Extent is a run of a thin device's address space that is mapped (data)
// or not (reads as zeroes).
type Extent struct {
	Off, Len uint64
	Mapped   bool
}

// BlockStatus reports the allocation of [off, off+n) as extents, at most
// maxExtents of them (the last one may end before off+n).
func (t *Thin) BlockStatus(ctx context.Context, off, n uint64, maxExtents int, dst []Extent) ([]Extent, error) {
	if err := t.checkRange(off, n); err != nil {
		return dst, err
	}
	if n == 0 {
		return dst, nil
	}
	bs := t.p.bs
	end := off + n
	first, last := off/bs, (end-1)/bs
	pos := off // the next byte to describe
	add := func(upto uint64, mapped bool) bool {
		if upto <= pos {
			return true
		}
		if k := len(dst); k > 0 && dst[k-1].Mapped == mapped && dst[k-1].Off+dst[k-1].Len == pos {
			dst[k-1].Len += upto - pos
		} else {
			if len(dst) >= maxExtents {
				return false
			}
			dst = append(dst, Extent{Off: pos, Len: upto - pos, Mapped: mapped})
		}
		pos = upto
		return true
	}
	full := false
	err := t.p.md.WalkMappings(t.id, first, last+1, func(v uint64, _ thinmeta.Lookup) error {
		start := max(v*bs, off)
		if !add(start, false) || !add(min((v+1)*bs, end), true) {
			full = true
			return errStop
		}
		return ctx.Err()
	})
	if err != nil && err != errStop {
		return dst, err
	}
	if !full {
		add(end, false)
	}
	return dst, nil
}
