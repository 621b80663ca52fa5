package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/thind-storage/thind/catalog"
)

// CreateVolume creates an empty thin volume.
func (d *Daemon) CreateVolume(ctx context.Context, spec catalog.Spec) (catalog.Volume, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	var v catalog.Volume
	err := d.withPool(ctx, func(p *catalogPool) error {
		var err error
		v, err = d.cat.CreateVolume(ctx, p, spec)
		return err
	})
	return v, err
}

// SnapshotVolume snapshots origin (live: its writes are quiesced for the
// moment it takes) into a new volume. Unless ownAccess, the snapshot
// keeps the origin's access list: a copy of a volume's data is no less
// private than the volume.
func (d *Daemon) SnapshotVolume(ctx context.Context, origin string, spec catalog.Spec, ownAccess bool) (catalog.Volume, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if !ownAccess {
		// opMu keeps the origin as read here until the snapshot is
		// taken; a missing origin is the catalog's to report.
		o, err := d.cat.Get(ctx, origin)
		switch {
		case err == nil:
			spec.Export.Access = o.Export.Access
		case !errors.Is(err, catalog.ErrNotFound):
			return catalog.Volume{}, fmt.Errorf("snapshot of %q: %w", origin, err)
		}
	}
	var v catalog.Volume
	err := d.withPool(ctx, func(p *catalogPool) error {
		var err error
		v, err = d.cat.SnapshotVolume(ctx, p, origin, spec)
		return err
	})
	return v, err
}

// DeleteVolume deletes a volume nobody is connected to, freeing the blocks
// only it used.
func (d *Daemon) DeleteVolume(ctx context.Context, name string) error {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if n := d.reg.users(name); n > 0 {
		return fmt.Errorf("%s: %w (%d NBD connections)", name, ErrBusy, n)
	}
	return d.withPool(ctx, func(p *catalogPool) error {
		return d.cat.DeleteVolume(ctx, p, name)
	})
}

// ErrShrink refuses a resize that would shrink a volume without
// ShrinkVolume (--allow-shrink), as lvreduce asks before it drops data.
var ErrShrink = errors.New("shrinking drops the data past the new end")

// ResizeVolume grows a volume, also while it is served: new connections
// are told the new size, and open ones may address it (package nbd checks
// requests against the live size). A smaller size is refused with
// ErrShrink.
func (d *Daemon) ResizeVolume(ctx context.Context, name string, size uint64) (catalog.Volume, error) {
	return d.resizeVolume(ctx, name, size, false)
}

// ShrinkVolume resizes a volume to any size. Shrinking needs the volume
// idle, and drops every block past the new end (zeroing the rest of a
// last partial block).
func (d *Daemon) ShrinkVolume(ctx context.Context, name string, size uint64) (catalog.Volume, error) {
	return d.resizeVolume(ctx, name, size, true)
}

func (d *Daemon) resizeVolume(ctx context.Context, name string, size uint64, allowShrink bool) (catalog.Volume, error) {
	if err := catalog.ValidSize(size); err != nil {
		return catalog.Volume{}, fmt.Errorf("resize volume %q: %w", name, err)
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	v, err := d.cat.Get(ctx, name)
	if err != nil {
		return v, err
	}
	served := d.reg.thin(name)
	if size < v.Size {
		if !allowShrink {
			return v, fmt.Errorf("volume %s: %s to %s: %w; pass --allow-shrink (allow_shrink in the API) to do it",
				name, humanSize(v.Size), humanSize(size), ErrShrink)
		}
		if served != nil {
			return v, fmt.Errorf("%s: %w: disconnect it before shrinking", name, ErrBusy)
		}
		// The engine unmaps past the end and zeroes the partial block;
		// the catalog then records the size (and finds nothing left to
		// unmap).
		th, err := d.st.engine.OpenThin(v.DevID, v.Size)
		if err != nil {
			return v, err
		}
		err = th.Resize(ctx, size)
		th.Close()
		if err != nil {
			return v, err
		}
	}
	err = d.withPool(ctx, func(p *catalogPool) error {
		v, err = d.cat.ResizeVolume(ctx, p, name, size)
		return err
	})
	if err == nil && served != nil {
		err = served.Resize(ctx, size)
	}
	return v, err
}

// UpdateVolume changes labels, description or export settings.
func (d *Daemon) UpdateVolume(ctx context.Context, name string, u catalog.Update) (catalog.Volume, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	return d.cat.UpdateVolume(ctx, name, u)
}

// Volume is a catalog volume with its live usage.
type Volume struct {
	catalog.Volume
	MappedBlocks uint64
	MappedBytes  uint64
	Connections  int
}

// Volumes lists the volumes with their usage; receives' staging volumes
// only if all.
func (d *Daemon) Volumes(ctx context.Context, f catalog.Filter, all bool) ([]Volume, error) {
	vols, err := d.cat.List(ctx, f)
	if err != nil {
		return nil, err
	}
	if !all {
		vols = withoutStaging(vols)
	}
	out := make([]Volume, 0, len(vols))
	for _, v := range vols {
		out = append(out, d.withUsage(v))
	}
	return out, nil
}

// GetVolume returns one volume with its usage.
func (d *Daemon) GetVolume(ctx context.Context, name string) (Volume, error) {
	v, err := d.cat.Get(ctx, name)
	if err != nil {
		return Volume{}, err
	}
	return d.withUsage(v), nil
}

func (d *Daemon) withUsage(v catalog.Volume) Volume {
	mapped, _ := d.st.md.MappedBlocks(v.DevID)
	return Volume{Volume: v, MappedBlocks: mapped, MappedBytes: mapped * d.cfg.BlockSize, Connections: d.reg.users(v.Name)}
}

// humanSize prints a byte count as the CLI's size flags take it.
func humanSize(n uint64) string {
	for _, u := range []struct {
		shift  uint
		suffix string
	}{{40, "T"}, {30, "G"}, {20, "M"}, {10, "K"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.suffix)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
