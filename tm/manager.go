package tm

import (
	"fmt"

	"github.com/thind-storage/thind/bm"
)

// Manager is the transaction manager. It is not safe for concurrent use.
type Manager struct {
	bm      *bm.Manager
	sm      SpaceMap
	shadows map[uint64]struct{} // blocks new or shadowed in this transaction
}

// New returns a transaction manager over bm allocating from sm. sm may be
// nil while a space map is being built on top of this manager (see
// SetSpaceMap); read-only users never need one.
func New(b *bm.Manager, sm SpaceMap) *Manager {
	return &Manager{bm: b, sm: sm, shadows: make(map[uint64]struct{})}
}

// SetSpaceMap attaches the space map once it exists: the second phase of
// building a metadata space map that lives on this very manager.
func (t *Manager) SetSpaceMap(sm SpaceMap) { t.sm = sm }

// SpaceMap returns the attached space map.
func (t *Manager) SpaceMap() SpaceMap { return t.sm }

// BM returns the block manager.
func (t *Manager) BM() *bm.Manager { return t.bm }

// ReadLock returns block b locked for reading.
func (t *Manager) ReadLock(b uint64, v bm.Validator) (bm.Block, error) {
	return t.bm.ReadLock(b, v)
}

// Unlock releases a block from any of the lock calls.
func (t *Manager) Unlock(b bm.Block) { t.bm.Unlock(b) }

// NewBlock allocates a block and returns it zeroed and write-locked. New
// blocks count as shadows: they are written in place until commit.
func (t *Manager) NewBlock(v bm.Validator) (bm.Block, error) {
	b, err := t.sm.NewBlock()
	if err != nil {
		return bm.Block{}, err
	}
	blk, err := t.bm.WriteLockZero(b, v)
	if err != nil {
		return bm.Block{}, err
	}
	t.shadows[b] = struct{}{}
	return blk, nil
}

// Shadow returns a writable version of block orig. If orig is already a
// shadow of this transaction and nobody else references it, it is locked
// in place. Otherwise it is copied to a new block and orig loses a
// reference. incChildren tells the caller that orig was shared, so the
// copy's children (or values) gained a referrer and must be incremented.
func (t *Manager) Shadow(orig uint64, v bm.Validator) (blk bm.Block, incChildren bool, err error) {
	shared, err := t.sm.CountIsMoreThanOne(orig)
	if err != nil {
		return bm.Block{}, false, err
	}
	if _, ok := t.shadows[orig]; ok && !shared {
		blk, err := t.bm.WriteLock(orig, v)
		return blk, false, err
	}
	// Validate orig before touching the space map, so a corrupt block
	// fails the call without changing any count. No lock is held across
	// the space map calls: they may lock blocks of their own.
	src, err := t.bm.ReadLock(orig, v)
	if err != nil {
		return bm.Block{}, false, err
	}
	t.bm.Unlock(src)
	nb, err := t.sm.NewBlock()
	if err != nil {
		return bm.Block{}, false, err
	}
	if err := t.sm.Dec(orig); err != nil {
		return bm.Block{}, false, err
	}
	if src, err = t.bm.ReadLock(orig, v); err != nil {
		return bm.Block{}, false, err
	}
	defer t.bm.Unlock(src)
	dst, err := t.bm.WriteLockZero(nb, v)
	if err != nil {
		return bm.Block{}, false, err
	}
	copy(dst.Data(), src.Data())
	t.shadows[nb] = struct{}{}
	return dst, shared, nil
}

// IsShadow reports whether b was allocated or shadowed in this transaction.
func (t *Manager) IsShadow(b uint64) bool {
	_, ok := t.shadows[b]
	return ok
}

// Inc adds a reference to block b.
func (t *Manager) Inc(b uint64) error { return t.sm.Inc(b) }

// Dec drops a reference to block b.
func (t *Manager) Dec(b uint64) error { return t.sm.Dec(b) }

// Count returns the reference count of block b.
func (t *Manager) Count(b uint64) (uint32, error) { return t.sm.Count(b) }

// IsShared reports whether block b has more than one reference.
func (t *Manager) IsShared(b uint64) (bool, error) { return t.sm.CountIsMoreThanOne(b) }

// PreCommit brings the metadata space map's on-disk structures up to date;
// afterwards its root can be copied into the superblock.
func (t *Manager) PreCommit() error {
	if err := t.sm.Commit(); err != nil {
		return fmt.Errorf("metadata space map commit: %w", err)
	}
	return nil
}

// Commit writes every dirty block and syncs, then writes the write-locked
// superblock and syncs again, and starts a new transaction.
func (t *Manager) Commit(superblock bm.Block) error {
	if err := t.bm.FlushAndUnlock(superblock); err != nil {
		return err
	}
	clear(t.shadows)
	return nil
}

// Abort forgets the current transaction's shadows and their dirty blocks.
// The caller reopens its space maps from the committed superblock.
func (t *Manager) Abort() {
	clear(t.shadows)
	t.bm.DiscardDirty()
}
