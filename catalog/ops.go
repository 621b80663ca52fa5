package catalog

import (
	"context"
	"fmt"
	"maps"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// CreateVolume creates an empty thin device and names it: the three
// steps of transact, with CreateThin as the metadata change. It returns
// the volume as recorded. A cancelled ctx stops it only before it starts.
func (c *Catalog) CreateVolume(ctx context.Context, pool Pool, spec Spec) (Volume, error) {
	if err := validSpec(&spec); err != nil {
		return Volume{}, err
	}
	var v Volume
	err := c.change(ctx, func() error {
		if err := c.checkFree(spec.Name); err != nil {
			return err
		}
		id, err := c.allocID(pool)
		if err != nil {
			return err
		}
		v = c.newVolume(&spec, id, nil)
		in := &Intent{Op: OpCreate, Volume: v}
		return c.transact(pool, in, func(p Pool) error { return p.CreateThin(id) })
	})
	if err != nil {
		return Volume{}, fmt.Errorf("create volume %q: %w", spec.Name, err)
	}
	return v.clone(), nil
}

// SnapshotVolume creates spec.Name as a snapshot of the volume origin; a
// zero spec.Size takes the origin's size. The caller must have quiesced
// writes to origin (metadata.Pool.CreateSnap's rule).
func (c *Catalog) SnapshotVolume(ctx context.Context, pool Pool, origin string, spec Spec) (Volume, error) {
	var v Volume
	err := c.change(ctx, func() error {
		o, err := c.loadVolume(origin)
		if err != nil {
			return err
		}
		if o == nil {
			return fmt.Errorf("origin %q: %w", origin, ErrNotFound)
		}
		if spec.Size == 0 {
			spec.Size = o.Size
		}
		if err := validSpec(&spec); err != nil {
			return err
		}
		if err := c.checkFree(spec.Name); err != nil {
			return err
		}
		id, err := c.allocID(pool)
		if err != nil {
			return err
		}
		v = c.newVolume(&spec, id, &Origin{Name: o.Name, DevID: o.DevID})
		in := &Intent{Op: OpSnapshot, Volume: v}
		return c.transact(pool, in, func(p Pool) error { return p.CreateSnap(id, o.DevID) })
	})
	if err != nil {
		return Volume{}, fmt.Errorf("snapshot %q as %q: %w", origin, spec.Name, err)
	}
	return v.clone(), nil
}

// DeleteVolume removes the volume and its thin device. Its snapshots
// keep it as their origin.
func (c *Catalog) DeleteVolume(ctx context.Context, pool Pool, name string) error {
	err := c.change(ctx, func() error {
		v, err := c.existingVolume(name)
		if err != nil {
			return err
		}
		in := &Intent{Op: OpDelete, Volume: *v}
		return c.transact(pool, in, func(p Pool) error { return p.DeleteThin(v.DevID) })
	})
	if err != nil {
		return fmt.Errorf("delete volume %q: %w", name, err)
	}
	return nil
}

// ResizeVolume changes the volume's size. Shrinking unmaps every data
// block wholly past the new end in the same metadata commit, so that
// growing the volume later reads zeroes there, not old data; the part of
// a block that straddles the new end is left to the engine to zero. The
// caller must have quiesced I/O to the volume.
func (c *Catalog) ResizeVolume(ctx context.Context, pool Pool, name string, size uint64) (Volume, error) {
	if err := validSize(size); err != nil {
		return Volume{}, fmt.Errorf("resize volume %q: %w", name, err)
	}
	var v Volume
	err := c.change(ctx, func() error {
		cur, err := c.existingVolume(name)
		if err != nil {
			return err
		}
		v = *cur
		if size == cur.Size {
			return nil
		}
		v.Size = size
		in := &Intent{Op: OpResize, Volume: v}
		return c.transact(pool, in, func(p Pool) error {
			if size >= cur.Size {
				return nil // the transaction id alone marks the commit
			}
			bs := uint64(p.DataBlockSize()) * SectorSize
			if bs == 0 {
				return fmt.Errorf("pool reports a data block size of 0")
			}
			first := size/bs + min(size%bs, 1) // first block wholly past the end
			_, err := p.RemoveRange(v.DevID, first, math.MaxUint64)
			return err
		})
	})
	if err != nil {
		return Volume{}, fmt.Errorf("resize volume %q: %w", name, err)
	}
	return v.clone(), nil
}

// UpdateVolume changes labels, description or export settings. The thin
// metadata does not know them, so this is one synced pebble write, no
// intent.
func (c *Catalog) UpdateVolume(ctx context.Context, name string, u Update) (Volume, error) {
	var v Volume
	err := c.change(ctx, func() error {
		cur, err := c.existingVolume(name)
		if err != nil {
			return err
		}
		v = *cur
		if u.Labels != nil {
			if err := validLabels(*u.Labels); err != nil {
				return err
			}
			v.Labels = canonicalLabels(*u.Labels)
		}
		if u.Description != nil {
			if err := validDescription(*u.Description); err != nil {
				return err
			}
			v.Description = *u.Description
		}
		if u.Export != nil {
			if err := validAccess(u.Export.Access); err != nil {
				return err
			}
			v.Export = *u.Export
			v.Export.Access = canonicalAccess(u.Export.Access)
		}
		return c.db.Set(volKey(name), encodeVolume(&v), pebble.Sync)
	})
	if err != nil {
		return Volume{}, fmt.Errorf("update volume %q: %w", name, err)
	}
	return v.clone(), nil
}

func (c *Catalog) checkFree(name string) error {
	v, err := c.loadVolume(name)
	if err != nil {
		return err
	}
	if v != nil {
		return ErrExists
	}
	return nil
}

// newVolume builds the record of a new volume. The creation time is cut
// to what the record stores (Unix nanoseconds, UTC), so the returned
// value equals what Get returns later.
func (c *Catalog) newVolume(s *Spec, id uint64, origin *Origin) Volume {
	return Volume{
		Name:        s.Name,
		DevID:       id,
		Size:        s.Size,
		Created:     c.stamp(),
		Origin:      origin,
		Labels:      canonicalLabels(s.Labels),
		Description: s.Description,
		Export:      ExportSettings{ReadOnly: s.Export.ReadOnly, RequireTLS: s.Export.RequireTLS, Access: canonicalAccess(s.Export.Access)},
	}
}

// stamp returns the time now as a record stores it.
func (c *Catalog) stamp() time.Time { return time.Unix(0, c.now().UnixNano()).UTC() }

// canonicalLabels copies labels, nil for none, as decoding gives.
func canonicalLabels(l map[string]string) map[string]string {
	if len(l) == 0 {
		return nil
	}
	return maps.Clone(l)
}
