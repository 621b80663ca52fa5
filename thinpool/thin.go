package thinpool

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/thind-storage/thind/bioprison"
	"github.com/thind-storage/thind/internal/lockorder"
	"github.com/thind-storage/thind/thinmeta"
)

// Thin is an open thin device: the handle I/O goes through. Open handles
// are shared: opening an open device returns the same Thin.
type Thin struct {
	p      *Pool
	id     uint64
	finder *thinmeta.Finder
	size   atomic.Uint64 // bytes

	// writes is held shared by every write, discard and zeroing, and
	// exclusively to quiesce them (snapshot, shrink).
	writes lockorder.RWMutex[lockorder.ThinWrites]
	// allIO counts I/O in flight by generation (all_io_ds): a commit
	// waits for the I/O that started before it, which may still hold
	// blocks the transaction freed.
	allIO bioprison.DeferredSet[chan struct{}]
	// changed says the thin's mappings changed since the last commit: a
	// FUA write must then commit (dm_thin_changed_this_transaction).
	changed atomic.Bool

	refs int // under p.thinsMu
	st   thinCounters
}

// ID returns the thin device id.
func (t *Thin) ID() uint64 { return t.id }

// Size returns the device size in bytes.
func (t *Thin) Size() uint64 { return t.size.Load() }

// Pool returns the pool the thin belongs to.
func (t *Thin) Pool() *Pool { return t.p }

// CreateThin creates an empty thin device. Commit makes it durable.
func (p *Pool) CreateThin(id uint64) error {
	if err := p.canChangeMetadata(); err != nil {
		return err
	}
	p.txn.RLock()
	defer p.txn.RUnlock()
	if err := p.md.CreateThin(id); err != nil {
		return err
	}
	p.mdDirty.Store(true)
	return nil
}

// CreateSnap creates device id as a snapshot of origin, in O(1) whatever
// the size. Writes to an open origin are quiesced while it happens, as
// dm-thin needs the origin suspended. Commit makes it durable.
func (p *Pool) CreateSnap(ctx context.Context, id, origin uint64) error {
	if err := p.canChangeMetadata(); err != nil {
		return err
	}
	p.thinsMu.Lock()
	t := p.thins[origin]
	if t != nil {
		t.refs++ // keep the handle while we wait on it
	}
	p.thinsMu.Unlock()
	if t != nil {
		defer t.Close()
		t.writes.Lock()
		defer t.writes.Unlock()
	}
	p.txn.RLock()
	defer p.txn.RUnlock()
	if err := p.md.CreateSnap(id, origin); err != nil {
		return err
	}
	p.mdDirty.Store(true)
	if t != nil {
		t.changed.Store(true)
	}
	return nil
}

// DeleteThin deletes a closed thin device. Its mappings are discarded
// first, so the data blocks only it used are passed down to the data
// device (unless passdown is off); then the device goes. Commit makes it
// durable.
func (p *Pool) DeleteThin(ctx context.Context, id uint64) error {
	if err := p.canChangeMetadata(); err != nil {
		return err
	}
	p.thinsMu.Lock()
	if _, open := p.thins[id]; open {
		p.thinsMu.Unlock()
		return fmt.Errorf("device %d: %w", id, ErrBusy)
	}
	// A private handle, invisible to others, for the discard.
	t := &Thin{p: p, id: id}
	p.thinsMu.Unlock()
	if _, err := p.md.Device(id); err != nil {
		return err
	}
	if high, ok, err := p.md.HighestMappedBlock(id); err != nil {
		return err
	} else if ok {
		if _, err := t.unmapBlocks(ctx, 0, high+1); err != nil {
			return err
		}
	}
	p.txn.RLock()
	defer p.txn.RUnlock()
	if err := p.md.DeleteThin(id); err != nil {
		return err
	}
	p.mdDirty.Store(true)
	return nil
}

// SetTransactionID changes the metadata's transaction id (the userspace
// sequence number dm-thin stores); Commit makes it durable.
func (p *Pool) SetTransactionID(current, next uint64) error {
	p.txn.RLock()
	defer p.txn.RUnlock()
	if err := p.md.SetTransactionID(current, next); err != nil {
		return err
	}
	p.mdDirty.Store(true)
	return nil
}

// OpenThin opens device id with a size in bytes (dm-thin keeps no device
// sizes: they belong to whoever configures the device). Opening an open
// device returns the same handle; its size stays.
func (p *Pool) OpenThin(id, size uint64) (*Thin, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if _, err := p.md.Device(id); err != nil {
		return nil, err
	}
	p.thinsMu.Lock()
	defer p.thinsMu.Unlock()
	if t, ok := p.thins[id]; ok {
		t.refs++
		return t, nil
	}
	t := &Thin{p: p, id: id, finder: p.md.Finder(id), refs: 1}
	t.size.Store(size)
	p.thins[id] = t
	return t, nil
}

// Close releases the handle.
func (t *Thin) Close() error {
	p := t.p
	p.thinsMu.Lock()
	defer p.thinsMu.Unlock()
	if t.refs <= 0 {
		return ErrClosed
	}
	t.refs--
	if t.refs == 0 && p.thins[t.id] == t {
		delete(p.thins, t.id)
	}
	return nil
}

// Resize changes the device size. Shrinking unmaps every block past the
// new end (passing freed blocks down) and zeroes the rest of a last
// partial block, so that growing again shows zeroes, not old data.
func (t *Thin) Resize(ctx context.Context, size uint64) error {
	t.writes.Lock()
	defer t.writes.Unlock()
	old := t.size.Load()
	if size >= old {
		t.size.Store(size)
		return nil
	}
	if err := t.p.canChangeMetadata(); err != nil {
		return err
	}
	bs := t.p.bs
	first := (size + bs - 1) / bs
	if high, ok, err := t.p.md.HighestMappedBlock(t.id); err != nil {
		return err
	} else if ok && high >= first {
		if _, err := t.unmapBlocks(ctx, first, high+1); err != nil {
			return err
		}
	}
	if tail := size % bs; tail != 0 {
		if err := t.zeroPart(ctx, size/bs, tail, bs-tail, false); err != nil {
			return err
		}
	}
	t.size.Store(size)
	return nil
}

// canChangeMetadata refuses metadata changes in read-only and fail modes,
// and switches to read-only mode when the metadata device is full: what
// remains, the reserve, is kept for committing what has been done, as
// dm-thin's out-of-metadata-space mode.
func (p *Pool) canChangeMetadata() error {
	switch Mode(p.mode.Load()) {
	case ModeFail:
		return ErrFailed
	case ModeReadOnly:
		if p.metaFull.Load() {
			return ErrMetadataSpace
		}
		return ErrReadOnly
	}
	if p.closed.Load() {
		return ErrClosed
	}
	if p.metaLow.Load() && p.md.FreeMetadataBlocks() == 0 {
		p.metaFull.Store(true)
		p.setMode(ModeReadOnly, "out of metadata space")
		return ErrMetadataSpace
	}
	return nil
}

func (t *Thin) checkRange(off, n uint64) error {
	size := t.size.Load()
	if off > size || n > size-off {
		return &RangeError{Off: off, Len: n, Size: size}
	}
	return nil
}

// waitEarlierIO blocks until every I/O on the thin that started before the
// call has finished.
func (t *Thin) waitEarlierIO(ctx context.Context) error {
	ch := make(chan struct{})
	if !t.allIO.AddWork(ch) {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// endIO leaves the all-I/O set, running the work it releases.
func (t *Thin) endIO(e bioprison.DeferredEntry) {
	var buf [4]chan struct{}
	for _, ch := range t.allIO.Dec(e, buf[:0]) {
		close(ch)
	}
}

// lockCell holds the prison cell of key while a request changes the
// mappings it covers (waiting for the request holding it, if any).
func (p *Pool) lockCell(ctx context.Context, key bioprison.Key) (bioprison.Held, error) {
	// Ranked before the wait, so that a wait out of order is caught even
	// when it happens not to deadlock.
	lockorder.Acquire[lockorder.Cell]()
	c, err := p.cells.Lock(ctx, key)
	if err != nil {
		lockorder.Release[lockorder.Cell]()
	}
	return c, err
}

func (p *Pool) unlockCell(c bioprison.Held) {
	p.cells.Unlock(c)
	lockorder.Release[lockorder.Cell]()
}

// virtualKey is the prison key of virtual block b of thin dev.
func virtualKey(dev, b uint64) bioprison.Key {
	return bioprison.BlockKey(bioprison.Virtual, dev, b)
}

// find looks a virtual block up; ok is false for an unmapped block.
func (t *Thin) find(v uint64) (thinmeta.Lookup, bool, error) {
	l, err := t.finder.Find(v)
	if err == thinmeta.ErrNotMapped {
		return l, false, nil
	}
	if err != nil {
		return l, false, err
	}
	return l, true, nil
}
