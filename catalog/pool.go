package catalog

import "github.com/thind-storage/thind/thinmeta"

// PoolView is what Reconcile and Check read from the thin metadata. They
// never change it: the metadata decides which devices exist, and the
// catalog follows.
type PoolView interface {
	// TransactionID returns the committed-or-pending userspace
	// transaction id.
	TransactionID() uint64
	// Devices lists the thin devices.
	Devices() []thinmeta.DeviceInfo
}

// Pool is the thin metadata the catalog keeps in step with. It is
// satisfied by *metadata.Pool; the daemon may pass its engine instead, as
// long as these calls reach one metadata.
//
// The catalog owns the metadata transaction id: nothing else may set it.
// While a catalog operation runs, nothing else may Commit or Abort the
// metadata (the daemon holds its commit policy off, as dm-thin holds the
// pool lock across a message): the operation's device change and its
// transaction id must reach the disk in the same commit. If that rule is
// broken, Reconcile still ends in agreement, by adopting or dropping
// volumes, but the operation may not be all-or-nothing.
type Pool interface {
	PoolView
	// SetTransactionID moves the transaction id from current to next at
	// the next commit.
	SetTransactionID(current, next uint64) error
	// CreateThin creates an empty thin device.
	CreateThin(id uint64) error
	// CreateSnap creates id as a snapshot of origin; writes to origin
	// must be quiesced by the caller.
	CreateSnap(id, origin uint64) error
	// DeleteThin removes a thin device and its mappings.
	DeleteThin(id uint64) error
	// RemoveRange unmaps the blocks of id in [begin, end); used when a
	// volume shrinks, so that growing it again does not bring back old
	// data.
	RemoveRange(id, begin, end uint64) (uint64, error)
	// DataBlockSize returns the pool's data block size in sectors.
	DataBlockSize() uint32
	// Commit makes every change durable.
	Commit() error
	// Abort drops every change since the last commit. The catalog calls
	// it only after a change or commit failed, as dm-thin aborts the
	// metadata transaction when an operation fails.
	Abort() error
}

var _ Pool = (*thinmeta.Pool)(nil)
