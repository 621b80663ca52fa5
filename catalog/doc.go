// Package catalog is thind's catalog of thin volumes, kept in pebble and
// crash-consistent with the dm-thin metadata of one pool.
//
// A volume is a name (see ValidName), the thin device id holding its
// blocks, a size, a creation time, the origin it was snapshotted from (by
// name and device id, kept after the origin is deleted), labels, a
// description and NBD export settings. The catalog maps names to device
// ids and back, lists volumes by name with a label filter, and answers
// lineage queries (Children).
//
// # Two stores, one truth
//
// Creating, snapshotting, deleting and resizing a volume change both the
// catalog and the thin metadata, and a crash can come between any two
// writes. The thin metadata decides: its userspace transaction id, which
// the catalog owns, is the commit marker of every such operation. Each
// runs in three steps (CreateVolume and its siblings do all three; the
// caller cannot do them out of order):
//
//  1. Write an intent, keyed by the transaction id T+1 the metadata
//     commit will carry, to pebble with Sync.
//  2. Change the metadata, SetTransactionID(T, T+1), Commit.
//  3. In one synced pebble batch, write the intent's records, delete the
//     intent and record T+1 as agreed.
//
// Reconcile, run at start-up, finds at most one pending intent and
// completes it if the metadata is at T+1 or drops it if it is still at
// T. The outcome of a crash after each step:
//
//	crash                      metadata  catalog after Reconcile
//	before step 1              T         unchanged (no intent)
//	after step 1               T         intent rolled back: unchanged
//	in step 2, before Commit   T         rolled back (uncommitted metadata is lost)
//	in step 2, during Commit   T or T+1  whichever the superblock holds
//	after step 2               T+1       intent completed: the operation is done
//	after step 3               T+1       done (no intent)
//
// for every operation alike. Reconcile then repairs anything else,
// always in favour of the metadata, and reports it: a volume whose
// device is missing is dropped, a device no volume names is adopted as
// "orphan-<id>" (never deleted: it may hold someone's only copy), and a
// transaction id moved by someone else is accepted. Check reports the
// same disagreements without repairing them. Changes are refused until
// Reconcile has succeeded.
//
// Without a crash, a failed metadata change is rolled back at once; a
// failed metadata Commit leaves the intent pending and every change
// refused (ErrNeedsReconcile) until Reconcile, because a device that
// failed a write may or may not hold the new superblock.
//
// The catalog relies on nothing else committing the metadata while one
// of its operations runs, and on nothing else setting the transaction id
// (see Pool); if that is broken, Reconcile still ends in agreement and
// says so in its Report.
//
// # Device ids
//
// New volumes get ids from 1 upwards, skipping every id the metadata or
// the catalog uses, and a deleted volume's id is not handed out again
// until all 2^24 have been (lineage is by id). The catalog imports
// thinmeta for DeviceInfo and MaxDevID only; it changes the
// metadata only through the Pool it is given, and Reconcile not at all.
//
// # Storage
//
// Keys are versioned ("v1/vol/<name>", "v1/id/<devid>",
// "v1/intent/<txid>", "v1/state"; see keys.go), values are a strict
// binary encoding with a version byte (see record.go), and every value
// read is decoded and checked; one that does not decode is reported as a
// *CorruptError.
package catalog
