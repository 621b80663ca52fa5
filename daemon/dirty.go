package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/nbd"
	"github.com/thind-storage/thind/thinpool"
)

var _ nbd.DirtyBitmaps = (*thinBackend)(nil)

// Bitmaps names the volumes of the export's lineage: its dirty bitmaps
// (qemu:dirty-bitmap:NAME) are the ranges where it differs from each.
func (b *thinBackend) Bitmaps(ctx context.Context) ([]string, error) {
	return b.d.lineage(ctx, b.th.ID())
}

// errExtentsFull ends a diff once a reply has all the extents it can take.
var errExtentsFull = errors.New("extents full")

// DirtyStatus reports [off, off+length) as clean and dirty extents, dirty
// where the export differs from volume name: changed data, and ranges
// name maps that the export no longer does, which read as zeroes now and
// must be restored as such.
func (b *thinBackend) DirtyStatus(ctx context.Context, name string, off, length int64, max int, dst []nbd.Extent) ([]nbd.Extent, error) {
	base, err := b.d.cat.Get(ctx, name)
	if errors.Is(err, catalog.ErrNotFound) {
		return dst, fmt.Errorf("dirty bitmap %q: the volume is gone: %w", name, err)
	}
	if err != nil {
		return dst, err
	}
	end := min(uint64(off+length), b.th.Size())
	pos := uint64(off)
	add := func(upto uint64, f nbd.ExtentFlags) bool {
		if upto <= pos {
			return true
		}
		if k := len(dst); k > 0 && dst[k-1].Flags == f {
			dst[k-1].Length += int64(upto - pos)
		} else {
			if len(dst) >= max {
				return false
			}
			dst = append(dst, nbd.Extent{Length: int64(upto - pos), Flags: f})
		}
		pos = upto
		return true
	}
	err = b.d.st.engine.Diff(ctx, base.DevID, b.th.ID(), pos, end, func(x thinpool.DiffExtent) error {
		if !add(x.Off, 0) || !add(x.Off+x.Len, nbd.ExtentDirty) {
			return errExtentsFull
		}
		return nil
	})
	switch {
	case errors.Is(err, errExtentsFull):
		return dst, nil
	case err != nil:
		return dst, nbdError(err)
	}
	add(end, 0)
	return dst, nil
}

// lineage lists, by name, the volumes related to device dev by snapshots:
// its origins, their other snapshots and its own, transitively, through
// deleted volumes too (lineage is by device id). dev's own is left out.
func (d *Daemon) lineage(ctx context.Context, dev uint64) ([]string, error) {
	vols, err := d.cat.List(ctx, catalog.Filter{})
	if err != nil {
		return nil, err
	}
	parent := map[uint64]uint64{}
	var find func(x uint64) uint64
	find = func(x uint64) uint64 {
		p, ok := parent[x]
		if !ok || p == x {
			return x
		}
		r := find(p)
		parent[x] = r
		return r
	}
	for _, v := range vols {
		if v.Origin != nil {
			parent[find(v.DevID)] = find(v.Origin.DevID)
		}
	}
	root := find(dev)
	var names []string
	for _, v := range vols { // sorted by name
		if v.DevID != dev && find(v.DevID) == root && !isStaging(v) {
			names = append(names, v.Name)
		}
	}
	return names, nil
}
