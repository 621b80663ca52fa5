package daemon

import (
	"context"
	"fmt"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/thinpool"
)

// PrepareDiff checks a diff of volume target against volume base from
// byte offset and returns its header; errors here come before any range.
// Any two volumes compare: a volume and its snapshot, two snapshots,
// unrelated volumes. An empty base is nothing: the diff is then what
// target maps.
func (d *Daemon) PrepareDiff(ctx context.Context, base, target string, offset uint64) (control.DiffHeader, error) {
	if err := d.refuseStaging(ctx, base, target); err != nil {
		return control.DiffHeader{}, err
	}
	if base != "" {
		b, err := d.cat.Get(ctx, base)
		if err != nil {
			return control.DiffHeader{}, err
		}
		base = b.Name
	}
	t, err := d.cat.Get(ctx, target)
	if err != nil {
		return control.DiffHeader{}, err
	}
	if offset > t.Size {
		return control.DiffHeader{}, fmt.Errorf("offset %d past the end of %s (%d bytes): %w", offset, target, t.Size, catalog.ErrInvalid)
	}
	return control.DiffHeader{Base: base, Target: t.Name, Size: t.Size, BlockSize: d.cfg.BlockSize, Start: offset}, nil
}

// Diff streams the ranges where h's target differs from its base, from
// h.Start to the target's end, to fn, and returns the totals. It
// compares the devices' mapping trees, skipping what they share, so its
// cost follows the changes; the volumes may be in use meanwhile. With
// no base, every range the target maps is changed.
func (d *Daemon) Diff(ctx context.Context, h control.DiffHeader, fn func(control.DiffRange) error) (control.DiffEnd, error) {
	t, err := d.cat.Get(ctx, h.Target)
	if err != nil {
		return control.DiffEnd{}, err
	}
	end := control.DiffEnd{Done: true}
	emit := func(x thinpool.DiffExtent) error {
		r := control.DiffRange{Offset: x.Off, Length: x.Len, State: control.DiffChanged}
		if x.Unmapped {
			r.State = control.DiffUnmapped
			end.UnmappedBytes += x.Len
		} else {
			end.ChangedBytes += x.Len
		}
		return fn(r)
	}
	stop := min(h.Size, t.Size)
	if h.Base == "" {
		err = d.st.engine.Allocated(ctx, t.DevID, h.Start, stop, emit)
	} else {
		var b catalog.Volume
		if b, err = d.cat.Get(ctx, h.Base); err == nil {
			err = d.st.engine.Diff(ctx, b.DevID, t.DevID, h.Start, stop, emit)
		}
	}
	if err != nil {
		return control.DiffEnd{}, fmt.Errorf("diff of %s against %q: %w", h.Target, h.Base, err)
	}
	return end, nil
}
