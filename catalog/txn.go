package catalog

import (
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
)

// An operation that changes both stores runs in three steps; a crash
// may stop it between any two writes.
//
//  1. Intent. The intent, keyed by the transaction id T+1 that the
//     metadata commit will carry, is written to pebble with Sync. Nothing
//     has changed yet; the intent only says what T+1 will mean.
//  2. Metadata. The device change, SetTransactionID(T, T+1) and Commit.
//     dm-thin's commit writes the superblock last, so after a crash the
//     metadata either has the change and T+1, or neither.
//  3. Apply. One pebble batch, synced: the intent's records are written,
//     the intent is deleted and the state records T+1 as agreed.
//
// Whether an operation happened is decided by one thing only: the
// metadata's transaction id. resolve is step 3 and also what Reconcile
// does with an intent found pending, so the live path and recovery share
// one rule:
//
//	metadata id == intent's id      the commit happened: apply the intent
//	metadata id == intent's id - 1  it did not: delete the intent
//	anything else                   someone else moved it (see resolve)
//
// A crash after step 1, or in step 2 before the new superblock is on
// disk, leaves the metadata at T (uncommitted changes die with the
// crash), so the operation is rolled back; once the superblock is on
// disk it is completed; after step 3 there is nothing to do.
//
// Without a crash, transact decides at once only what it knows: if the
// change or SetTransactionID fails, nothing was committed, so it aborts
// the metadata and rolls the intent back. If Commit fails, the outcome
// is unknown (a device that failed a write or flush may hold the new
// superblock or lose it later), so the intent stays pending and the
// error says ErrNeedsReconcile.
func (c *Catalog) transact(pool Pool, in *Intent, change func(Pool) error) error {
	s, err := c.agreedState(pool)
	if err != nil {
		return err
	}
	if s.txID == math.MaxUint64 {
		return fmt.Errorf("%w: transaction id %d is the last", ErrDiverged, s.txID)
	}
	in.TxID = s.txID + 1
	key := intentKey(in.TxID)

	// Step 1.
	if err := c.db.Set(key, encodeIntent(in), pebble.Sync); err != nil {
		// The intent may have reached the WAL all the same; harmless
		// (the metadata is still at T, so it rolls back), but let
		// Reconcile be the one to say so.
		c.ready = false
		return fmt.Errorf("%v %q: writing intent %d: %w", in.Op, in.Volume.Name, in.TxID, err)
	}

	// Step 2.
	err = change(pool)
	if err == nil {
		err = pool.SetTransactionID(s.txID, in.TxID)
	}
	if err != nil {
		// Nothing was committed: drop the in-core part of the change,
		// then the intent (resolve sees the old id and rolls back).
		if aerr := pool.Abort(); aerr != nil {
			c.ready = false
			return fmt.Errorf("%v %q: %w (abort: %v; the intent stays for Reconcile)", in.Op, in.Volume.Name, err, aerr)
		}
		if _, rerr := c.resolve(pool, s, in, false); rerr != nil {
			c.ready = false
			return errors.Join(err, fmt.Errorf("%v %q: rolling back intent %d: %w", in.Op, in.Volume.Name, in.TxID, rerr))
		}
		return err
	}
	if err := pool.Commit(); err != nil {
		// The commit may or may not be durable, whatever the metadata
		// reads back now: a device that failed a write or a flush may
		// still hold it, or lose it later. Abort as dm-thin does after a
		// failed commit, and leave the intent to a Reconcile against the
		// metadata reopened from its device.
		c.ready = false
		if aerr := pool.Abort(); aerr != nil {
			err = fmt.Errorf("%w (abort: %v)", err, aerr)
		}
		return fmt.Errorf("%v %q: committing transaction %d: %w (%w)", in.Op, in.Volume.Name, in.TxID, err, ErrNeedsReconcile)
	}

	// Step 3.
	done, err := c.resolve(pool, s, in, false)
	if err == nil && !done {
		err = fmt.Errorf("%w: the metadata committed, but its transaction id is not %d", ErrDiverged, in.TxID)
	}
	if err != nil {
		c.ready = false
		return fmt.Errorf("%v %q: applying intent %d: %w", in.Op, in.Volume.Name, in.TxID, err)
	}
	return nil
}

// agreedState loads the state and checks that the metadata is where the
// catalog left it, so that the next intent's key is the id the metadata
// commit will really carry.
func (c *Catalog) agreedState(pool PoolView) (state, error) {
	s, ok, err := c.loadState()
	if err != nil {
		return state{}, err
	}
	if !ok {
		c.ready = false
		return state{}, fmt.Errorf("%w: no state record", ErrNeedsReconcile)
	}
	if t := pool.TransactionID(); t != s.txID {
		c.ready = false
		return state{}, fmt.Errorf("%w: metadata transaction id is %d, catalog agreed %d", ErrNeedsReconcile, t, s.txID)
	}
	return s, nil
}

// resolve completes or rolls back the pending intent in by the
// metadata's transaction id, in one synced batch with the state. s is
// the state as it was when the intent was written.
//
// If the id is neither the intent's nor the one before it, something
// else has committed the metadata with its own id. The live path gives
// up (ErrDiverged) and leaves the intent to Reconcile, which passes
// byDevices: the operation counts as done if the metadata's devices say
// so (create and snapshot: the device exists; delete: it does not);
// a resize, which leaves no trace but the id, counts as not done. The
// state keeps the old id, and Reconcile's agreement pass reports the move.
func (c *Catalog) resolve(pool PoolView, s state, in *Intent, byDevices bool) (done bool, err error) {
	b := c.db.NewBatch()
	defer b.Close()
	switch t := pool.TransactionID(); {
	case t == in.TxID:
		done = true
	case t == in.TxID-1:
		// Not committed: nothing of it is in the metadata.
	case !byDevices:
		return false, fmt.Errorf("%w: intent %d (%v %q), metadata at %d", ErrDiverged, in.TxID, in.Op, in.Volume.Name, t)
	default:
		done = intentVisible(pool, in)
	}
	if done {
		if err := c.apply(b, in, &s); err != nil {
			return false, err
		}
		if pool.TransactionID() == in.TxID {
			s.txID = in.TxID
		}
	}
	if err := b.Delete(intentKey(in.TxID), nil); err != nil {
		return false, err
	}
	if err := b.Set([]byte(keyState), encodeState(&s), nil); err != nil {
		return false, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return false, err
	}
	return done, nil
}

// apply adds the records of a committed intent to b, checking that the
// catalog is as the intent expects: ops are serialized, so anything else
// is corruption.
func (c *Catalog) apply(b *pebble.Batch, in *Intent, s *state) error {
	v := &in.Volume
	cur, err := c.loadVolume(v.Name)
	if err != nil {
		return err
	}
	switch in.Op {
	case OpCreate, OpSnapshot:
		if cur != nil {
			return corrupt(volKey(v.Name), fmt.Errorf("exists, but intent %d creates it", in.TxID))
		}
		if name, err := c.get(idKey(v.DevID)); err != nil || name != nil {
			return errors.Join(err, corrupt(idKey(v.DevID), fmt.Errorf("in use, but intent %d creates it", in.TxID)))
		}
		if err := c.putVolume(b, v); err != nil {
			return err
		}
		s.nextID = v.DevID + 1
		return nil
	}
	if cur == nil || cur.DevID != v.DevID {
		return corrupt(volKey(v.Name), fmt.Errorf("not on device %d, which intent %d (%v) changes", v.DevID, in.TxID, in.Op))
	}
	switch in.Op {
	case OpDelete:
		return c.deleteVolume(b, cur)
	case OpResize:
		cur.Size = v.Size
		return b.Set(volKey(cur.Name), encodeVolume(cur), nil)
	}
	return fmt.Errorf("intent %d: unknown op %v", in.TxID, in.Op)
}

// intentVisible reports whether the metadata's devices show in as done.
func intentVisible(pool PoolView, in *Intent) bool {
	has := false
	for _, d := range pool.Devices() {
		if d.ID == in.Volume.DevID {
			has = true
		}
	}
	switch in.Op {
	case OpCreate, OpSnapshot:
		return has
	case OpDelete:
		return !has
	}
	return false
}

func (c *Catalog) putVolume(b *pebble.Batch, v *Volume) error {
	if err := b.Set(volKey(v.Name), encodeVolume(v), nil); err != nil {
		return err
	}
	return b.Set(idKey(v.DevID), encodeIDValue(v.Name), nil)
}

func (c *Catalog) deleteVolume(b *pebble.Batch, v *Volume) error {
	if err := b.Delete(volKey(v.Name), nil); err != nil {
		return err
	}
	return b.Delete(idKey(v.DevID), nil)
}
