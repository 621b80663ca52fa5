package catalog

import (
	"context"
	"errors"
	"fmt"
)

// Check reports every way the catalog and the thin metadata disagree,
// without repairing anything: a pending intent, a transaction id other
// than the agreed one, a volume whose device is missing, a device no
// volume names, and records that do not decode or contradict each other.
// After a successful Reconcile it returns nil; tests run it after every
// step, and the daemon may run it as a health check.
func (c *Catalog) Check(ctx context.Context, pool PoolView) error {
	var errs []error
	err := c.read(ctx, func() error {
		intents, err := c.loadIntents()
		if err != nil {
			return err
		}
		for _, in := range intents {
			errs = append(errs, fmt.Errorf("intent %d pending: %v %q on device %d", in.TxID, in.Op, in.Volume.Name, in.Volume.DevID))
		}
		s, ok, err := c.loadState()
		if err != nil {
			return err
		}
		t := pool.TransactionID()
		switch {
		case !ok:
			errs = append(errs, errors.New("no state record: never reconciled"))
		case s.txID != t:
			errs = append(errs, fmt.Errorf("catalog agreed transaction id %d, metadata has %d", s.txID, t))
		}
		vols, err := c.consistentVolumes()
		if err != nil {
			return err
		}
		devices := pool.Devices()
		has := make(map[uint64]bool, len(devices))
		for _, d := range devices {
			has[d.ID] = true
		}
		named := make(map[uint64]bool, len(vols))
		for _, v := range vols {
			if !has[v.DevID] {
				errs = append(errs, fmt.Errorf("volume %q: device %d is not in the metadata", v.Name, v.DevID))
			}
			named[v.DevID] = true
		}
		for _, d := range devices {
			if !named[d.ID] {
				errs = append(errs, fmt.Errorf("device %d: no volume names it", d.ID))
			}
		}
		return nil
	})
	return errors.Join(append([]error{err}, errs...)...)
}
