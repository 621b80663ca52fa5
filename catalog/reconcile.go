package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// Report says what Reconcile found and did. The daemon should log it;
// anything Repaired names happened outside the catalog's protocol.
type Report struct {
	// TransactionID is the metadata's transaction id, which the catalog
	// now agrees with.
	TransactionID uint64
	// Initialized is true when the catalog had no state yet and took
	// the metadata as it found it.
	Initialized bool
	// Pending is the operation that was under way, nil if none.
	Pending *Intent
	// Completed says whether Pending was completed or rolled back.
	Completed bool
	// ByDevices is true when the transaction id could not decide
	// Pending and the metadata's devices did (see Pool).
	ByDevices bool
	// Moved is true when the metadata's transaction id was not the one
	// the catalog had agreed (Previous): something else committed one.
	Moved    bool
	Previous uint64
	// Dropped are volumes whose thin device the metadata no longer has.
	// Their records are removed: the data is gone, and a name that
	// cannot be served should not be listed. Their snapshots keep them
	// as origin.
	Dropped []Volume
	// Adopted are volumes created for thin devices that no volume named,
	// called OrphanName(id), with size 0 (the metadata keeps no size:
	// resize one to read its data, or delete it to free its blocks) and
	// the label AdoptedLabel=true. Reconcile never deletes a device:
	// it may hold the only copy of someone's data.
	Adopted []Volume
}

// AdoptedLabel marks volumes Reconcile adopted.
const AdoptedLabel = "thind/adopted"

// Repaired reports whether Reconcile found the catalog and the metadata
// disagreeing beyond an interrupted operation of its own.
func (r *Report) Repaired() bool {
	return r.ByDevices || r.Moved || len(r.Dropped) > 0 || len(r.Adopted) > 0
}

// Reconcile brings the catalog into agreement with the thin metadata,
// and must succeed once after Open before the catalog accepts changes;
// it may run again at any time, e.g. after an operation returned
// ErrNeedsReconcile. It reads the metadata and never changes it.
//
// First, the pending intent, if any, is completed or rolled back by the
// metadata's transaction id (see transact): id == intent's id means
// the metadata commit happened, id == intent's id - 1 means it did not.
// Then every remaining disagreement is repaired in favour of the
// metadata, and reported: a volume whose device is missing is dropped,
// a device that no volume names is adopted as OrphanName(id), and a
// transaction id moved by someone else is taken as it is.
//
// Reconcile is idempotent: a crash during it leaves work that the next
// run redoes.
//
// Reconcile cannot tell whether pool is this catalog's pool: nothing
// identifies a pool but its devices. Handed another pool, it would drop
// every volume and adopt every device. A daemon unsure of its wiring can
// run Check first and look before it repairs.
func (c *Catalog) Reconcile(ctx context.Context, pool PoolView) (Report, error) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	var rep Report
	err := c.read(ctx, func() error {
		if err := c.resolvePending(pool, &rep); err != nil {
			return err
		}
		return c.agree(pool, &rep)
	})
	if err != nil {
		return rep, fmt.Errorf("reconcile: %w", err)
	}
	c.ready = true
	c.logReport(&rep)
	return rep, nil
}

func (c *Catalog) resolvePending(pool PoolView, rep *Report) error {
	intents, err := c.loadIntents()
	if err != nil {
		return err
	}
	switch len(intents) {
	case 0:
		return nil
	case 1:
	default:
		return corrupt(intentKey(intents[1].TxID), fmt.Errorf("%d intents pending, but operations are serialized", len(intents)))
	}
	in := intents[0]
	s, ok, err := c.loadState()
	if err != nil {
		return err
	}
	if !ok || in.TxID != s.txID+1 {
		return corrupt(intentKey(in.TxID), fmt.Errorf("intent does not follow the agreed transaction id %d (state present: %v)", s.txID, ok))
	}
	t := pool.TransactionID()
	done, err := c.resolve(pool, s, &in, true)
	if err != nil {
		return err
	}
	rep.Pending, rep.Completed = &in, done
	rep.ByDevices = t != in.TxID && t != in.TxID-1
	return nil
}

// agree makes the volumes match the metadata's devices one to one, and
// the state its transaction id, in one synced batch.
func (c *Catalog) agree(pool PoolView, rep *Report) error {
	s, ok, err := c.loadState()
	if err != nil {
		return err
	}
	vols, err := c.consistentVolumes()
	if err != nil {
		return err
	}
	t := pool.TransactionID()
	devices := pool.Devices()
	rep.TransactionID = t
	switch {
	case !ok:
		rep.Initialized = true
		s = state{txID: t, nextID: 1}
		for _, d := range devices {
			s.nextID = max(s.nextID, d.ID+1)
		}
	case s.txID != t:
		rep.Moved, rep.Previous = true, s.txID
		s.txID = t
	}

	b := c.db.NewBatch()
	defer b.Close()
	has := make(map[uint64]bool, len(devices))
	for _, d := range devices {
		has[d.ID] = true
	}
	named := make(map[uint64]bool, len(vols))
	byName := make(map[string]bool, len(vols))
	for i := range vols {
		v := &vols[i]
		if !has[v.DevID] {
			if err := c.deleteVolume(b, v); err != nil {
				return err
			}
			rep.Dropped = append(rep.Dropped, *v)
			continue
		}
		named[v.DevID] = true
		byName[v.Name] = true
	}
	for _, d := range devices {
		if named[d.ID] {
			continue
		}
		v := Volume{
			Name:        OrphanName(d.ID),
			DevID:       d.ID,
			Created:     c.stamp(),
			Labels:      map[string]string{AdoptedLabel: "true"},
			Description: fmt.Sprintf("thin device %d had no volume; adopted by reconcile at transaction %d", d.ID, t),
		}
		if byName[v.Name] {
			// Only Reconcile makes orphan- names, each for its own id.
			return corrupt(volKey(v.Name), fmt.Errorf("names another device, but device %d needs it", d.ID))
		}
		if err := c.putVolume(b, &v); err != nil {
			return err
		}
		rep.Adopted = append(rep.Adopted, v)
	}
	if err := b.Set([]byte(keyState), encodeState(&s), nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// consistentVolumes returns every volume record after checking that the
// id index is exactly their inverse. Both are written in one batch, so a
// mismatch is corruption, not something a crash leaves.
func (c *Catalog) consistentVolumes() ([]Volume, error) {
	var vols []Volume
	if err := c.scanVolumes(func(v *Volume) error {
		vols = append(vols, *v)
		return nil
	}); err != nil {
		return nil, err
	}
	ids, err := c.loadIDs()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, v := range vols {
		if name, ok := ids[v.DevID]; !ok || name != v.Name {
			errs = append(errs, corrupt(idKey(v.DevID), fmt.Errorf("names %q, but volume %q is on device %d", name, v.Name, v.DevID)))
		}
		delete(ids, v.DevID)
	}
	for id, name := range ids {
		errs = append(errs, corrupt(idKey(id), fmt.Errorf("names %q, which has no record on that device", name)))
	}
	return vols, errors.Join(errs...)
}

func (c *Catalog) logReport(r *Report) {
	if r.Initialized {
		c.log.Info("catalog initialized from the thin metadata", "txid", r.TransactionID)
	}
	if r.Pending != nil {
		outcome := "rolled back"
		if r.Completed {
			outcome = "completed"
		}
		lvl := slog.LevelInfo
		if r.ByDevices {
			lvl = slog.LevelWarn
		}
		c.log.Log(context.Background(), lvl, "pending operation "+outcome,
			"op", r.Pending.Op.String(), "volume", r.Pending.Volume.Name, "dev", r.Pending.Volume.DevID,
			"txid", r.Pending.TxID, "by_devices", r.ByDevices)
	}
	if r.Moved {
		c.log.Warn("thin metadata transaction id moved outside the catalog", "from", r.Previous, "to", r.TransactionID)
	}
	for _, v := range r.Dropped {
		c.log.Warn("volume dropped: its thin device is missing", "volume", v.Name, "dev", v.DevID)
	}
	for _, v := range r.Adopted {
		c.log.Warn("thin device adopted: no volume named it", "volume", v.Name, "dev", v.DevID)
	}
}
