package thinpool

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/thind-storage/thind/bioprison"
	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/internal/lockorder"
	"github.com/thind-storage/thind/thinmeta"
)

// Pool is a thin pool in service: metadata, the data device behind a
// dispatcher, the bio prison and the commit machinery. It is safe for
// concurrent use.
type Pool struct {
	md   *thinmeta.Pool
	data *blk.Dispatcher
	cfg  Config
	log  *slog.Logger
	bs   uint64 // data block size in bytes
	// cells is the bio prison: a request that changes a mapping holds
	// the cell of its virtual block (or range) for the change.
	cells *bioprison.Locker

	// txn's read side is held by every metadata change (alloc, map,
	// unmap, snapshot), its write side by commit.
	txn     lockorder.RWMutex[lockorder.Txn]
	mdDirty atomic.Bool // metadata changed since the last commit
	// dataFirst: this transaction mapped a block whose new data must be
	// durable before the commit (it was copied, or may hold old bytes).
	dataFirst atomic.Bool
	clean     cleanBlocks

	mode       atomic.Int32
	modeMu     lockorder.Mutex[lockorder.Leaf]
	modeWhy    string      // why the pool entered its mode; guarded by modeMu
	metaLow    atomic.Bool // the metadata space map crossed its threshold
	metaFull   atomic.Bool // read-only for lack of metadata space (not a failure)
	lowWaterOn atomic.Bool
	spaceMu    lockorder.Mutex[lockorder.Leaf]
	spaceCh    chan struct{} // closed when data space may have appeared

	thinsMu lockorder.Mutex[lockorder.Thins]
	thins   map[uint64]*Thin

	pd passdown

	// batches are reusable ioBatches, each with its own plug, for
	// requests that reach the data device in several pieces.
	batches sync.Pool

	// reuses moves on whenever data blocks that mappings pointed to may
	// start being reused or punched: at each commit and abort. Reads check
	// it instead of joining a thin's allIO (see Thin.ReadAt). It has a
	// cache line of its own, as every read loads it and only commits
	// store it.
	_      [64]byte
	reuses atomic.Uint64
	_      [56]byte

	// hold keeps background commits (periodic, FLUSH, FUA) from running
	// while a caller makes a change that must reach the disk in one
	// commit with other state of its own (the catalog's transaction id).
	hold lockorder.Mutex[lockorder.PoolHold]

	commits   chan commitReq
	events    *notifier // delivers OnModeChange and OnLowWater
	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	closed    atomic.Bool

	st poolCounters

	// hooks are nil in service; tests set them (export_test.go) to run
	// something inside a window of the data path. Atomic, so that a test
	// may set them while the pool serves other goroutines.
	hooks atomic.Pointer[testHooks]
}

// testHooks run inside windows of the data path that tests must hit.
type testHooks struct {
	readMapped  func() // between a read's lookups and its data I/O
	writeMapped func() // between an in-place write's lookup and its data I/O
	passdown    func() // after a commit held its freed blocks, before their punch
}

// Open puts a pool in service over its metadata and its data device (which
// the pool takes over and closes). A data device larger than the data
// space map grows the pool; a smaller one is refused, as dm-thin does.
func Open(md *thinmeta.Pool, data blk.Backend, cfg Config) (*Pool, error) {
	cfg.setDefaults()
	if err := cfg.check(); err != nil {
		data.Close()
		return nil, err
	}
	bs := uint64(md.DataBlockSize()) * 512
	size, err := data.Size()
	if err != nil {
		data.Close()
		return nil, fmt.Errorf("data device size: %w", err)
	}
	blocks := uint64(size) / bs
	switch have := md.DataBlocks(); {
	case blocks < have:
		data.Close()
		return nil, fmt.Errorf("data device holds %d blocks of %d bytes, the pool's metadata %d: it must not shrink", blocks, bs, have)
	case blocks > have:
		if err := md.ResizeData(blocks); err != nil {
			data.Close()
			return nil, err
		}
		if err := md.Commit(); err != nil {
			data.Close()
			return nil, err
		}
	}
	d, err := blk.New(data, cfg.Dispatcher)
	if err != nil {
		data.Close()
		return nil, err
	}
	p := &Pool{
		md:      md,
		data:    d,
		cfg:     cfg,
		log:     cfg.Logger,
		bs:      bs,
		cells:   bioprison.NewLocker(bioprison.Options{}),
		thins:   map[uint64]*Thin{},
		commits: make(chan commitReq, 256),
		closing: make(chan struct{}),
		spaceCh: make(chan struct{}),
		events:  newNotifier(),
	}
	p.batches.New = func() any { return newBatch(d) }
	p.setMetadataThreshold()
	if err := p.findClean(0, md.DataBlocks()); err != nil {
		d.Close()
		p.events.close()
		return nil, err
	}
	if md.NeedsCheck() {
		p.mode.Store(int32(ModeReadOnly))
		p.modeWhy = "the metadata has the needs_check flag set"
		p.log.Warn("metadata has the needs_check flag set: pool is read-only until it is checked")
	}
	p.wg.Add(1)
	go p.committer()
	return p, nil
}

// Metadata returns the pool's metadata.
func (p *Pool) Metadata() *thinmeta.Pool { return p.md }

// BlockSize returns the data block size in bytes.
func (p *Pool) BlockSize() uint64 { return p.bs }

// Mode returns the pool's mode.
func (p *Pool) Mode() Mode { return Mode(p.mode.Load()) }

// ModeReason says why the pool entered its mode ("" for write mode at
// start).
func (p *Pool) ModeReason() string {
	p.modeMu.Lock()
	defer p.modeMu.Unlock()
	return p.modeWhy
}

func (p *Pool) setMode(m Mode, why string) {
	p.modeMu.Lock()
	old := Mode(p.mode.Load())
	if old == m || (old == ModeFail) || (old == ModeReadOnly && m == ModeOutOfDataSpace) {
		p.modeMu.Unlock()
		return
	}
	p.mode.Store(int32(m))
	p.modeWhy = why
	p.modeMu.Unlock()
	p.log.Warn("pool mode changed", "from", old.String(), "to", m.String(), "reason", why)
	if fn := p.cfg.OnModeChange; fn != nil {
		p.events.post(func() { fn(old, m) })
	}
}

// SetWriteMode returns a read-only or out-of-space pool to normal service
// (after the data device grew, or the metadata was checked and the flag
// cleared). It fails while the metadata needs a check.
func (p *Pool) SetWriteMode() error {
	if p.md.NeedsCheck() {
		return fmt.Errorf("%w: stop thind and run `thind meta check`, or `thind pool set-mode write --check`", ErrNeedsCheck)
	}
	if Mode(p.mode.Load()) == ModeFail {
		return ErrFailed
	}
	if err := p.md.SetReadWrite(); err != nil {
		return err
	}
	p.metaLow.Store(p.md.FreeMetadataBlocks() < metadataThreshold(p.md.MetadataBlocks()))
	p.metaFull.Store(false)
	p.setMode(ModeWrite, "requested")
	return nil
}

// ClearNeedsCheck clears the needs_check flag of a read-only pool whose
// metadata, as committed on disk, a check has just passed, returns it to
// write mode, and commits at once so that the flag is cleared on disk
// too. Read-only mode makes this safe online: nothing changes the
// metadata between the check and the clear. (dm-thin has no online
// clear; thin_check --clear-needs-check-flag is the offline one.)
func (p *Pool) ClearNeedsCheck(ctx context.Context) error {
	if Mode(p.mode.Load()) == ModeFail {
		return ErrFailed
	}
	if Mode(p.mode.Load()) == ModeWrite {
		return fmt.Errorf("%w: the pool is in write mode, its metadata can change under a check", ErrNeedsCheck)
	}
	p.md.ClearNeedsCheck()
	if err := p.SetWriteMode(); err != nil {
		return err
	}
	p.mdDirty.Store(true)
	return p.Commit(ctx)
}

// metadataFailed handles a failed metadata change, as dm-thin's
// metadata_operation_failed and abort_transaction: the transaction is
// aborted (if even that fails, the pool fails), needs_check is set and
// written to the superblock where it can be (the pool holds it in core
// where it cannot), and the pool goes read-only.
func (p *Pool) metadataFailed(op string, err error) error {
	p.log.Error("metadata operation failed", "op", op, "err", err)
	p.dropPassdown()
	p.st.metadataErrors.Add(1)
	// Abort first: it rereads the superblock, flags included.
	rerr := p.md.SetReadOnly()
	p.reuses.Add(1) // the open transaction was dropped
	if rerr != nil {
		p.setMode(ModeFail, "metadata abort failed: "+rerr.Error())
		return fmt.Errorf("%s: %w (%w)", op, ErrFailed, err)
	}
	if serr := p.md.SetNeedsCheck(); serr != nil {
		p.log.Error("could not write needs_check to the superblock; the pool holds it until it stops", "err", serr)
	}
	p.setMode(ModeReadOnly, op+": "+err.Error())
	return fmt.Errorf("%s: %w (%w)", op, ErrReadOnly, err)
}

// Close drains the commit loop, commits, and closes the data device. Thin
// handles must be closed first.
func (p *Pool) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		close(p.closing)
		p.wg.Wait()
		p.hold.Lock()
		err = p.commitNow(true)
		p.hold.Unlock()
		if derr := p.data.Close(); err == nil {
			err = derr
		}
		p.events.close()
	})
	return err
}

// Resize grows the data device to what its backend now holds (after the
// file or device was made bigger), and leaves out-of-space mode.
func (p *Pool) Resize(ctx context.Context) error {
	if err := p.data.Revalidate(); err != nil {
		return err
	}
	blocks := uint64(p.data.Size()) / p.bs
	// Exclusive: the new blocks' hole scan must not race allocations.
	p.txn.Lock()
	old := p.md.DataBlocks()
	err := p.md.ResizeData(blocks)
	if err == nil {
		p.mdDirty.Store(true)
		err = p.findClean(old, blocks)
	}
	p.txn.Unlock()
	if err != nil {
		return err
	}
	if err := p.Commit(ctx); err != nil {
		return err
	}
	if p.Mode() == ModeOutOfDataSpace {
		p.setMode(ModeWrite, "data device grew")
	}
	p.lowWaterOn.Store(false)
	p.signalSpace()
	return nil
}

// ResizeMetadata grows the metadata to n blocks (after the metadata file
// or device was made bigger) and commits at once, as dm-thin's
// pool_preresume does: the new blocks are free only from the next
// transaction. A pool read-only for lack of metadata space returns to
// write mode.
func (p *Pool) ResizeMetadata(ctx context.Context, n uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if Mode(p.mode.Load()) == ModeFail {
		return ErrFailed
	}
	p.hold.Lock()
	p.txn.Lock()
	err := p.md.ResizeMetadata(n)
	if err == nil {
		p.mdDirty.Store(true)
	}
	p.txn.Unlock()
	if err == nil {
		err = p.commitNow(true)
	}
	p.hold.Unlock()
	if err != nil {
		return err
	}
	p.setMetadataThreshold()
	if p.metaFull.Load() && !p.md.NeedsCheck() {
		return p.SetWriteMode()
	}
	p.metaLow.Store(p.md.FreeMetadataBlocks() < metadataThreshold(p.md.MetadataBlocks()))
	return nil
}

// metadataThreshold is where the metadata reserve starts: a quarter of
// the device or 1024 blocks, as dm-thin's calc_metadata_threshold.
func metadataThreshold(blocks uint64) uint64 { return min(1024, blocks/4) }

func (p *Pool) setMetadataThreshold() {
	p.md.SetMetadataThreshold(metadataThreshold(p.md.MetadataBlocks()), func() { p.metaLow.Store(true) })
}

// signalSpace wakes writes waiting for data space.
func (p *Pool) signalSpace() {
	p.spaceMu.Lock()
	close(p.spaceCh)
	p.spaceCh = make(chan struct{})
	p.spaceMu.Unlock()
}

func (p *Pool) spaceWait() <-chan struct{} {
	p.spaceMu.Lock()
	defer p.spaceMu.Unlock()
	return p.spaceCh
}
