package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/thinmeta"
)

// The pool identity: a random id stored in the catalog (v1/pool) and in
// the metadata superblock's uuid field (docs/ownership.md). A catalog is
// used only with the devices that carry its id; anything else is refused
// before either is changed, unless the operator adopts deliberately
// (Config.Adopt), which gives both a new id.

// ErrNotThisPool is wrapped by every refusal of a catalog and devices
// that do not belong together.
var ErrNotThisPool = errors.New("the catalog and the devices belong to different pools")

// metaIdentity is what the metadata device says, read without writing.
type metaIdentity struct {
	formatted bool
	id        catalog.PoolID // zero: none (Linux, thin_restore, thin_repair)
}

func readMetaIdentity(path string) (metaIdentity, error) {
	f, _, err := bm.OpenFile(path, true)
	if err != nil {
		return metaIdentity{}, fmt.Errorf("metadata device: %w", err)
	}
	defer f.Close()
	var m metaIdentity
	if m.formatted, err = thinmeta.IsFormatted(f); err != nil || !m.formatted {
		return m, err
	}
	sb, err := thinmeta.ReadSuperblock(f)
	if err != nil {
		return m, fmt.Errorf("opening the metadata: %w", err)
	}
	m.id = catalog.PoolID(sb.UUID)
	return m, nil
}

// identityPlan is the outcome of the check: the id both sides must carry
// once the pool is open (zero: they already agree), and why.
type identityPlan struct {
	id   catalog.PoolID
	note string
}

// checkIdentity decides whether this catalog may use these devices.
func checkIdentity(c *Config, m metaIdentity, own catalog.Ownership) (identityPlan, error) {
	catDir := filepath.Join(c.DataDir, "catalog")
	refuse := func(format string, args ...any) (identityPlan, error) {
		return identityPlan{}, fmt.Errorf("%w: %s", ErrNotThisPool, fmt.Sprintf(format, args...))
	}
	adopt := func(note string) (identityPlan, error) {
		id, err := newPoolID()
		return identityPlan{id: id, note: note}, err
	}
	switch {
	case !m.formatted && own.Used:
		return refuse("the catalog in %s holds volumes of pool %s, but the metadata device %s is blank; "+
			"point --metadata-device and --data-device at that pool's devices, restore its metadata (thind meta restore), "+
			"or move %s away to start a new pool", catDir, describeID(own.ID), c.MetadataDevice, catDir)
	case !own.Used && (!m.formatted || m.id.IsZero()):
		// A new pool, or one no thind has owned (Linux made it, or
		// thin_restore): take it. An id an interrupted start already
		// chose is kept.
		if !own.ID.IsZero() {
			return identityPlan{id: own.ID, note: "finishing the start that made this pool"}, nil
		}
		if m.formatted {
			return adopt("took ownership of metadata no thind owned (made by Linux or thin_restore)")
		}
		return adopt("")
	case !own.ID.IsZero() && own.ID == m.id:
		return identityPlan{}, nil
	case c.Adopt:
		return adopt(fmt.Sprintf("adopted the devices (--adopt): the catalog's pool %s, the metadata's %s, now both a new id",
			describeID(own.ID), describeID(m.id)))
	case own.ID.IsZero() && m.id.IsZero():
		return refuse("neither the catalog in %s nor the metadata on %s records which pool it belongs to "+
			"(an older thind made them); if they are one pool's, start once with --adopt to record it", catDir, c.MetadataDevice)
	case m.id.IsZero():
		return refuse("the metadata on %s carries no pool identity (Linux, thin_restore or thin_repair wrote it), "+
			"but the catalog in %s belongs to pool %s; if this metadata is that pool's (restored or repaired), "+
			"start once with --adopt and the catalog is reconciled with it", c.MetadataDevice, catDir, describeID(own.ID))
	case !own.Used:
		return refuse("the metadata on %s belongs to pool %s, whose catalog is elsewhere, and the catalog in %s is new; "+
			"start thind on that pool's --data-dir, or start with --adopt to take the pool over with this catalog "+
			"(the other catalog is then refused)", c.MetadataDevice, describeID(m.id), catDir)
	default:
		return refuse("the catalog in %s belongs to pool %s, the metadata on %s to pool %s; "+
			"point --metadata-device and --data-device at this catalog's own devices, or start with --adopt "+
			"to make this catalog the pool's (its volumes are then reconciled with the pool's thin devices)",
			catDir, describeID(own.ID), c.MetadataDevice, describeID(m.id))
	}
}

func describeID(id catalog.PoolID) string {
	if id.IsZero() {
		return "(none recorded)"
	}
	return id.String()
}

func newPoolID() (catalog.PoolID, error) {
	var id catalog.PoolID
	if _, err := rand.Read(id[:]); err != nil {
		return id, err
	}
	id[6] = id[6]&0x0f | 0x40 // a version 4 UUID
	id[8] = id[8]&0x3f | 0x80
	return id, nil
}

// applyIdentity gives the catalog and then the metadata the planned id.
// In that order a crash in between leaves a catalog whose id the metadata
// lacks: an unused catalog finishes on the next start, a used one (an
// adoption) asks for --adopt again.
func (d *Daemon) applyIdentity(ctx context.Context, plan identityPlan) error {
	if plan.id.IsZero() {
		return nil
	}
	if err := d.cat.SetPoolID(ctx, plan.id); err != nil {
		return fmt.Errorf("recording the pool identity in the catalog: %w", err)
	}
	if catalog.PoolID(d.st.md.UUID()) != plan.id {
		if err := d.st.md.SetUUID(plan.id); err != nil {
			return fmt.Errorf("recording the pool identity in the metadata: %w", err)
		}
	}
	if plan.note != "" {
		d.log.Warn(plan.note, "pool", plan.id.String())
	}
	return nil
}
