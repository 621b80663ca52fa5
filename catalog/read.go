package catalog

import (
	"context"
	"fmt"
)

// Get returns the volume called name, or ErrNotFound.
func (c *Catalog) Get(ctx context.Context, name string) (Volume, error) {
	var v *Volume
	err := c.read(ctx, func() (err error) {
		v, err = c.loadVolume(name)
		return err
	})
	if err != nil {
		return Volume{}, err
	}
	if v == nil {
		return Volume{}, fmt.Errorf("volume %q: %w", name, ErrNotFound)
	}
	return *v, nil
}

// ByID returns the volume on thin device id, or ErrNotFound.
func (c *Catalog) ByID(ctx context.Context, id uint64) (Volume, error) {
	var v *Volume
	err := c.read(ctx, func() error {
		key := idKey(id)
		b, err := c.get(key)
		if err != nil || b == nil {
			return err
		}
		name, err := decodeIDValue(b)
		if err != nil {
			return corrupt(key, err)
		}
		if v, err = c.loadVolume(name); err != nil {
			return err
		}
		if v == nil || v.DevID != id {
			return corrupt(key, fmt.Errorf("names volume %q, which is not on device %d", name, id))
		}
		return nil
	})
	if err != nil {
		return Volume{}, err
	}
	if v == nil {
		return Volume{}, fmt.Errorf("device %d: %w", id, ErrNotFound)
	}
	return *v, nil
}

// List returns the volumes f selects, sorted by name.
func (c *Catalog) List(ctx context.Context, f Filter) ([]Volume, error) {
	var out []Volume
	err := c.read(ctx, func() error {
		return c.scanVolumes(func(v *Volume) error {
			if f.match(v) {
				out = append(out, *v)
			}
			return nil
		})
	})
	return out, err
}

// Children returns the volumes snapshotted from thin device originID,
// sorted by name. Lineage is by device id, not name, so it survives the
// origin's deletion and a later volume taking the origin's name; use
// Get(name).DevID for a live origin. Device ids are not reused until the
// allocator has gone round all 2^24 of them.
func (c *Catalog) Children(ctx context.Context, originID uint64) ([]Volume, error) {
	var out []Volume
	err := c.read(ctx, func() error {
		// A scan, not an index: the catalog is small and one fewer key
		// per volume is one fewer thing to keep consistent.
		return c.scanVolumes(func(v *Volume) error {
			if v.Origin != nil && v.Origin.DevID == originID {
				out = append(out, *v)
			}
			return nil
		})
	})
	return out, err
}

// existingVolume is loadVolume for a volume that must exist: ErrNotFound
// if it does not.
func (c *Catalog) existingVolume(name string) (*Volume, error) {
	v, err := c.loadVolume(name)
	if err == nil && v == nil {
		err = ErrNotFound
	}
	return v, err
}

// loadVolume returns the record of name, nil if there is none.
func (c *Catalog) loadVolume(name string) (*Volume, error) {
	if ValidName(name) != nil {
		return nil, nil // no such record can exist
	}
	key := volKey(name)
	b, err := c.get(key)
	if err != nil || b == nil {
		return nil, err
	}
	v, err := decodeVolume(b)
	if err != nil {
		return nil, corrupt(key, err)
	}
	if v.Name != name {
		return nil, corrupt(key, fmt.Errorf("record names %q", v.Name))
	}
	return &v, nil
}

// scanVolumes decodes every volume record in name order.
func (c *Catalog) scanVolumes(fn func(*Volume) error) error {
	return c.scan(prefixVol, func(k, b []byte) error {
		v, err := decodeVolume(b)
		if err != nil {
			return corrupt(k, err)
		}
		if string(k) != prefixVol+v.Name {
			return corrupt(k, fmt.Errorf("record names %q", v.Name))
		}
		return fn(&v)
	})
}

// loadState returns the catalog state and whether there is one (a new
// catalog has none until its first Reconcile).
func (c *Catalog) loadState() (state, bool, error) {
	key := []byte(keyState)
	b, err := c.get(key)
	if err != nil || b == nil {
		return state{}, false, err
	}
	s, err := decodeState(b)
	if err != nil {
		return state{}, false, corrupt(key, err)
	}
	return s, true, nil
}

// loadIntents returns the pending intents in transaction id order.
func (c *Catalog) loadIntents() ([]Intent, error) {
	var out []Intent
	err := c.scan(prefixIntent, func(k, b []byte) error {
		txid, err := parseIntentKey(k)
		if err != nil {
			return corrupt(k, err)
		}
		in, err := decodeIntent(b)
		if err != nil {
			return corrupt(k, err)
		}
		if in.TxID != txid {
			return corrupt(k, fmt.Errorf("intent for transaction %d", in.TxID))
		}
		out = append(out, in)
		return nil
	})
	return out, err
}

// loadIDs returns the id index: device id to name.
func (c *Catalog) loadIDs() (map[uint64]string, error) {
	out := map[uint64]string{}
	err := c.scan(prefixID, func(k, b []byte) error {
		id, err := parseIDKey(k)
		if err != nil {
			return corrupt(k, err)
		}
		name, err := decodeIDValue(b)
		if err != nil {
			return corrupt(k, err)
		}
		out[id] = name
		return nil
	})
	return out, err
}
