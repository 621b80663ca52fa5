package thinmeta

import (
	"fmt"
	"sync/atomic"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/btree"
	"github.com/thind-storage/thind/internal/lockorder"
	"github.com/thind-storage/thind/spacemap"
	"github.com/thind-storage/thind/tm"
)

// Options configure Create and Open.
type Options struct {
	// CacheBytes bounds the metadata block cache (0: bm's default).
	CacheBytes int64
	// ReadOnly opens the metadata without ever writing it.
	ReadOnly bool
	// DataBlockSize, if set, must match the superblock on Open.
	DataBlockSize uint32
}

// Pool is the metadata of one thin pool (struct dm_pool_metadata). All
// methods are safe for concurrent use: lookups share the lock, changes
// hold it exclusively.
type Pool struct {
	mu       lockorder.RWMutex[lockorder.Metadata]
	dev      bm.Device
	opts     Options
	bm       *bm.Manager
	tm       *tm.Manager
	msm      *spacemap.Metadata
	dsm      *spacemap.Disk
	tr       *trees
	failed   bool
	readOnly bool

	// In-core copy of the superblock's changing fields.
	time          uint32
	root          uint64
	detailsRoot   uint64
	transID       uint64
	flags         uint32
	dataBlockSize uint32
	uuid          [16]byte // the pool's identity (identity.go)

	devices         map[uint64]*device
	metadataReserve uint64
	heldRootPending bool                // a metadata snapshot change awaits commit
	held            map[uint64]struct{} // data blocks kept from allocation (hold.go)

	metaThreshold   uint64
	metaThresholdFn func()

	cache *lookupCache
	views atomic.Pointer[map[uint64]*deviceView] // for lock-free lookups
}

// device is the in-core state of a thin device (struct dm_thin_device).
type device struct {
	DeviceDetails
	changed bool
	view    *deviceView
}

func newDevice(d DeviceDetails, changed bool) *device {
	v := &deviceView{}
	v.gen.Store(newGen())
	v.snapshottedTime.Store(d.SnapshottedTime)
	return &device{DeviceDetails: d, changed: changed, view: v}
}

// Create formats nrMetaBlocks blocks of dev as an empty pool with data
// blocks of dataBlockSize sectors, the way Linux formats an all-zero
// metadata device, then sizes the data space map to nrDataBlocks in a
// second transaction, as dm-thin does when the pool is first activated.
func Create(dev bm.Device, nrMetaBlocks uint64, dataBlockSize uint32, nrDataBlocks uint64, opts Options) (*Pool, error) {
	if err := CheckDataBlockSize(uint64(dataBlockSize) * sectorSize); err != nil {
		return nil, err
	}
	if nrDataBlocks > MaxDataBlock+1 {
		return nil, fmt.Errorf("%d data blocks: at most %d are addressable", nrDataBlocks, uint64(MaxDataBlock+1))
	}
	if nrMetaBlocks < 16 {
		return nil, fmt.Errorf("metadata device of %d blocks is too small", nrMetaBlocks)
	}
	p := &Pool{dev: dev, opts: opts, dataBlockSize: dataBlockSize, devices: map[uint64]*device{}, cache: newLookupCache()}
	p.bm = bm.New(dev, nrMetaBlocks, bm.Options{CacheBytes: opts.CacheBytes})
	if err := p.format(); err != nil {
		return nil, err
	}
	p.setMetadataReserve()
	if nrDataBlocks > 0 {
		if err := p.ResizeData(nrDataBlocks); err != nil {
			return nil, err
		}
		if err := p.Commit(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// format writes an empty pool (__format_metadata).
func (p *Pool) format() error {
	var err error
	if p.tm, p.msm, err = spacemap.CreateMetadata(p.bm, SuperblockLocation); err != nil {
		return err
	}
	if p.dsm, err = spacemap.CreateDisk(p.tm, 0); err != nil {
		return err
	}
	p.tr = newTrees(p.tm, p.dsm)
	if p.root, err = btree.Empty(&p.tr.info); err != nil {
		return err
	}
	if p.detailsRoot, err = btree.Empty(&p.tr.details); err != nil {
		return err
	}
	if err := p.dsm.Commit(); err != nil {
		return err
	}
	if err := p.tm.PreCommit(); err != nil {
		return err
	}
	sb, err := p.bm.WriteLockZero(SuperblockLocation, SuperblockValidator)
	if err != nil {
		return err
	}
	s := Superblock{
		Magic:             SuperblockMagic,
		Version:           Version,
		DataMappingRoot:   p.root,
		DeviceDetailsRoot: p.detailsRoot,
		DataBlockSize:     p.dataBlockSize,
		MetadataBlockSize: MetadataBlockSectors,
		MetadataNrBlocks:  p.msm.NrBlocks(),
	}
	p.dsm.Root().Encode(s.DataSMRoot[:])
	p.msm.Root().Encode(s.MetadataSMRoot[:])
	s.Encode(sb.Data())
	return p.tm.Commit(sb)
}

// Open opens the pool metadata on the first nrMetaBlocks blocks of dev.
func Open(dev bm.Device, nrMetaBlocks uint64, opts Options) (*Pool, error) {
	p := &Pool{dev: dev, opts: opts, readOnly: opts.ReadOnly, cache: newLookupCache()}
	p.bm = bm.New(dev, nrMetaBlocks, bm.Options{CacheBytes: opts.CacheBytes, ReadOnly: opts.ReadOnly})
	if err := p.open(); err != nil {
		return nil, err
	}
	p.setMetadataReserve()
	return p, nil
}

// IsFormatted reports whether block 0 of dev holds anything: Linux formats
// a metadata device only when its first block is all zeroes.
func IsFormatted(dev bm.Device) (bool, error) {
	buf := make([]byte, bm.BlockSize)
	if _, err := dev.ReadAt(buf, 0); err != nil {
		return false, err
	}
	for _, c := range buf {
		if c != 0 {
			return true, nil
		}
	}
	return false, nil
}

func (p *Pool) open() error {
	blk, err := p.bm.ReadLock(SuperblockLocation, SuperblockValidator)
	if err != nil {
		return fmt.Errorf("superblock: %w", err)
	}
	s := DecodeSuperblock(blk.Data())
	p.bm.Unlock(blk)
	if p.opts.DataBlockSize != 0 && s.DataBlockSize != p.opts.DataBlockSize {
		return fmt.Errorf("data block size is %d sectors, not %d: changing it is not supported", s.DataBlockSize, p.opts.DataBlockSize)
	}
	if err := CheckDataBlockSize(uint64(s.DataBlockSize) * sectorSize); err != nil {
		return fmt.Errorf("superblock: %w: %w", err, bm.ErrCorruption)
	}
	if s.IncompatFlags != 0 {
		return fmt.Errorf("incompat flags %#x: %w", s.IncompatFlags, ErrUnsupported)
	}
	if s.CompatROFlags != 0 && !p.opts.ReadOnly {
		return fmt.Errorf("compat_ro flags %#x prevent writing: %w", s.CompatROFlags, ErrUnsupported)
	}
	if p.tm, p.msm, err = spacemap.OpenMetadata(p.bm, s.MetadataSpaceMapRoot()); err != nil {
		return fmt.Errorf("metadata space map: %w", err)
	}
	if p.dsm, err = spacemap.OpenDisk(p.tm, s.DataSpaceMapRoot()); err != nil {
		return fmt.Errorf("data space map: %w", err)
	}
	p.tr = newTrees(p.tm, p.dsm)
	if p.metaThresholdFn != nil {
		p.msm.SetThreshold(p.metaThreshold, p.metaThresholdFn)
	}
	return p.beginTransaction()
}

// beginTransaction reloads the in-core state from the committed
// superblock and details tree (__begin_transaction).
func (p *Pool) beginTransaction() error {
	blk, err := p.bm.ReadLock(SuperblockLocation, SuperblockValidator)
	if err != nil {
		return err
	}
	s := DecodeSuperblock(blk.Data())
	p.bm.Unlock(blk)
	p.time = s.Time
	p.root = s.DataMappingRoot
	p.detailsRoot = s.DeviceDetailsRoot
	p.transID = s.TransactionID
	p.flags = s.Flags
	p.dataBlockSize = s.DataBlockSize
	p.uuid = s.UUID
	p.heldRootPending = false
	devices := map[uint64]*device{}
	err = btree.Walk(&p.tr.details, p.detailsRoot, func(keys []uint64, v []byte) error {
		devices[keys[0]] = newDevice(DecodeDeviceDetails(v), false)
		return nil
	})
	if err != nil {
		return fmt.Errorf("device details: %w", err)
	}
	p.devices = devices
	p.publishViews()
	return nil
}

// setMetadataReserve keeps back min(16 MiB, a tenth) of the metadata
// device, so that a nearly full pool can still commit a switch to
// read-only mode.
func (p *Pool) setMetadataReserve() {
	p.metadataReserve = min(4096, p.msm.NrBlocks()/10)
}

func (p *Pool) writable() error {
	switch {
	case p.failed:
		return ErrFailed
	case p.readOnly:
		return ErrReadOnly
	}
	return nil
}

// Commit makes every change so far durable: device details, then both
// space maps, then every dirty block, a flush, the superblock, a flush
// (__commit_transaction).
func (p *Pool) Commit() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.commit()
}

func (p *Pool) commit() error {
	if err := p.writable(); err != nil {
		return err
	}
	if err := p.writeChangedDetails(); err != nil {
		return err
	}
	if err := p.dsm.Commit(); err != nil {
		return err
	}
	if err := p.tm.PreCommit(); err != nil {
		return err
	}
	sb, err := p.bm.WriteLock(SuperblockLocation, SuperblockValidator)
	if err != nil {
		return err
	}
	s := DecodeSuperblock(sb.Data())
	s.Time = p.time
	s.DataMappingRoot = p.root
	s.DeviceDetailsRoot = p.detailsRoot
	s.TransactionID = p.transID
	s.Flags = p.flags
	s.UUID = p.uuid
	clear(s.DataSMRoot[:])
	clear(s.MetadataSMRoot[:])
	p.dsm.Root().Encode(s.DataSMRoot[:])
	p.msm.Root().Encode(s.MetadataSMRoot[:])
	s.Encode(sb.Data())
	if err := p.tm.Commit(sb); err != nil {
		return err
	}
	p.heldRootPending = false
	return nil
}

func (p *Pool) writeChangedDetails() error {
	var v [DeviceDetailsSize]byte
	for id, d := range p.devices {
		if !d.changed {
			continue
		}
		d.Encode(v[:])
		root, _, err := btree.Insert(&p.tr.details, p.detailsRoot, []uint64{id}, v[:])
		if err != nil {
			return err
		}
		p.detailsRoot = root
		d.changed = false
	}
	return nil
}

// Abort drops every change since the last commit and reopens the
// committed state (dm_pool_abort_metadata). If that fails, the pool is
// failed: every later call returns ErrFailed.
func (p *Pool) Abort() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.abort()
}

func (p *Pool) abort() error {
	if p.failed {
		return ErrFailed
	}
	p.tm.Abort()
	p.bm.Forget()
	if err := p.open(); err != nil {
		p.failed = true
		p.publishViews()
		return fmt.Errorf("reopening after abort: %w", err)
	}
	return nil
}

// Close commits (unless read-only or failed) and releases the pool.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	if !p.failed && !p.readOnly {
		err = p.commit()
	}
	p.failed = true
	p.publishViews()
	if cerr := p.bm.Close(); err == nil {
		err = cerr
	}
	return err
}

// SetReadOnly stops all changes (the pool's read-only mode); in-core
// uncommitted changes are aborted first.
func (p *Pool) SetReadOnly() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.readOnly {
		return nil
	}
	err := p.abort()
	p.readOnly = true
	return err
}

// SetReadWrite allows changes again.
func (p *Pool) SetReadWrite() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.opts.ReadOnly {
		return ErrReadOnly
	}
	if p.failed {
		return ErrFailed
	}
	p.readOnly = false
	return nil
}

// TransactionID returns the userspace transaction id.
func (p *Pool) TransactionID() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.transID
}

// SetTransactionID changes the transaction id from current to next; it is
// written at the next commit.
func (p *Pool) SetTransactionID(current, next uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	if p.transID != current {
		return fmt.Errorf("%w: is %d, not %d", ErrTransactionID, p.transID, current)
	}
	p.transID = next
	return nil
}

// Time returns the pool's snapshot time counter.
func (p *Pool) Time() uint32 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.time
}

// DataBlockSize returns the data block size in sectors.
func (p *Pool) DataBlockSize() uint32 { return p.dataBlockSize }

// NeedsCheck reports the superblock's needs_check flag.
func (p *Pool) NeedsCheck() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.flags&FlagNeedsCheck != 0
}

// SetNeedsCheck sets the needs_check flag and writes it to the superblock
// at once, without committing anything else: the superblock in core holds
// the committed roots unless a metadata snapshot change is pending, in
// which case the flag goes out with the next commit.
func (p *Pool) SetNeedsCheck() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed || p.opts.ReadOnly {
		return ErrReadOnly
	}
	p.flags |= FlagNeedsCheck
	sb, err := p.bm.WriteLock(SuperblockLocation, SuperblockValidator)
	if err != nil {
		return err
	}
	s := DecodeSuperblock(sb.Data())
	s.Flags = p.flags
	s.Encode(sb.Data())
	if p.heldRootPending {
		p.bm.Unlock(sb)
		return nil
	}
	return p.bm.FlushAndUnlock(sb)
}

// ClearNeedsCheck clears the flag at the next commit (thin_check
// --clear-needs-check-flag does it offline).
func (p *Pool) ClearNeedsCheck() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flags &^= FlagNeedsCheck
}

// Stats is a snapshot of the pool's space use.
type Stats struct {
	TransactionID      uint64
	DataBlockSize      uint32 // sectors
	DataBlocks         uint64
	DataBlocksFree     uint64
	MetadataBlocks     uint64
	MetadataBlocksFree uint64 // after the reserve
	MetadataReserve    uint64
	MetadataSnapHeld   bool
	MetadataSnap       uint64 // the held snapshot's superblock block, 0 if none
	NeedsCheck         bool
	ReadOnly, Failed   bool
	Devices            int
	Cache              bm.Stats
}

// Stats returns a snapshot of the pool's space use.
func (p *Pool) Stats() Stats {
	p.mu.RLock()
	defer p.mu.RUnlock()
	st := Stats{
		TransactionID:   p.transID,
		DataBlockSize:   p.dataBlockSize,
		NeedsCheck:      p.flags&FlagNeedsCheck != 0,
		ReadOnly:        p.readOnly,
		Failed:          p.failed,
		Devices:         len(p.devices),
		MetadataReserve: p.metadataReserve,
		Cache:           p.bm.Stats(),
	}
	if p.failed {
		return st
	}
	st.DataBlocks = p.dsm.NrBlocks()
	st.DataBlocksFree = p.freeDataBlocks()
	st.MetadataBlocks = p.msm.NrBlocks()
	if free := p.msm.NrFree(); free > p.metadataReserve {
		st.MetadataBlocksFree = free - p.metadataReserve
	}
	held, _ := p.heldRoot()
	st.MetadataSnapHeld, st.MetadataSnap = held != 0, held
	return st
}

// SetMetadataThreshold registers fn to run (with the pool locked: it must
// not call back into the pool) when free metadata blocks drop to
// threshold.
func (p *Pool) SetMetadataThreshold(threshold uint64, fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.metaThreshold, p.metaThresholdFn = threshold, fn
	p.msm.SetThreshold(threshold, fn)
}

const maxMetadataBlocks = spacemap.MaxMetadataBlocks
