package catalog

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// PoolID is the identity a catalog shares with the thin metadata of its
// pool (stored there in the superblock's uuid field), so that a catalog
// is never used with another pool's devices. The zero value is no
// identity.
type PoolID [16]byte

func (id PoolID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
}

// IsZero reports whether id is no identity.
func (id PoolID) IsZero() bool { return id == PoolID{} }

// Ownership is what the catalog says about its pool before it is
// reconciled with one.
type Ownership struct {
	// ID is the pool this catalog belongs to; zero if it was never given
	// one.
	ID PoolID
	// Used reports whether the catalog has ever recorded anything: a
	// reconcile, a volume or an intent. An unused catalog may adopt any
	// pool.
	Used bool
}

// Ownership reads the catalog's pool identity. It works before
// Reconcile, so the daemon can refuse a catalog that is not its devices'
// before either is changed.
func (c *Catalog) Ownership(ctx context.Context) (Ownership, error) {
	var o Ownership
	err := c.read(ctx, func() error {
		key := []byte(keyPool)
		b, err := c.get(key)
		if err != nil {
			return err
		}
		if b != nil {
			if o.ID, err = decodePoolID(b); err != nil {
				return corrupt(key, err)
			}
		}
		_, o.Used, err = c.loadState()
		if err != nil || o.Used {
			return err
		}
		return c.scan("v1/", func(k, _ []byte) error {
			if string(k) != keyPool {
				o.Used = true
			}
			return nil
		})
	})
	return o, err
}

// ReadOwnership reads the ownership of the catalog in dir without
// changing a byte of it (pebble read-only: the log is replayed in
// memory), so that a start refused for the wrong devices leaves the
// catalog as it found it. A missing directory is a new catalog.
func ReadOwnership(ctx context.Context, dir string, o Options) (Ownership, error) {
	if err := ctx.Err(); err != nil {
		return Ownership{}, err
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if _, err := o.FS.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return Ownership{}, nil
	}
	log := o.Logger
	if log == nil {
		log = discardLogger()
	}
	po := pebbleOptions(o, log)
	po.ReadOnly = true
	db, err := pebble.Open(dir, po)
	if errors.Is(err, pebble.ErrDBDoesNotExist) {
		return Ownership{}, nil
	}
	if err != nil {
		return Ownership{}, fmt.Errorf("catalog %s: %w", dir, err)
	}
	c := &Catalog{db: db, log: log}
	own, err := c.Ownership(ctx)
	return own, errors.Join(err, c.Close())
}

// SetPoolID records the pool this catalog belongs to (one synced write).
// The daemon calls it once the thin metadata carries the same identity.
func (c *Catalog) SetPoolID(ctx context.Context, id PoolID) error {
	if id.IsZero() {
		return invalid("pool id", "zero")
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	return c.read(ctx, func() error {
		return c.db.Set([]byte(keyPool), encodePoolID(id), pebble.Sync)
	})
}

// encodePoolID lays out the pool record, version 1: version byte, the 16
// bytes of the id.
func encodePoolID(id PoolID) []byte {
	return append([]byte{recordVersion}, id[:]...)
}

func decodePoolID(b []byte) (PoolID, error) {
	var id PoolID
	switch {
	case len(b) == 0:
		return id, fmt.Errorf("empty")
	case b[0] != recordVersion:
		return id, fmt.Errorf("version %d, want %d", b[0], recordVersion)
	case len(b) != 1+len(id):
		return id, fmt.Errorf("%d bytes, want %d", len(b), 1+len(id))
	}
	copy(id[:], b[1:])
	if id.IsZero() {
		return id, fmt.Errorf("zero pool id")
	}
	return id, nil
}
