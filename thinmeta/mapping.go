package thinmeta

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/thind-storage/thind/btree"
	"github.com/thind-storage/thind/internal/invariants"
)

// Lookup is the result of a mapping lookup.
type Lookup struct {
	DataBlock uint64
	Time      uint32
	// Shared says the block may be shared with a snapshot: it was mapped
	// before the device's last snapshot. Writing it must break sharing.
	Shared bool
}

// Find looks up the mapping of virtual block vblock of device dev
// (dm_thin_find_block). ErrNotMapped if there is none.
//
// A lookup cache hit takes no lock. It may then return a mapping that a
// change running at the same moment is removing, as if the lookup had
// come just before it; callers that must not act on such a mapping hold
// the block's cell, and a freed block is not reused before the commit
// that frees it, which the engine holds back until earlier I/O is done.
func (p *Pool) Find(dev, vblock uint64) (Lookup, error) {
	if vs := p.views.Load(); vs != nil {
		if l, ok := p.cached((*vs)[dev], vblock); ok {
			if invariants.Enabled {
				p.assertCacheAgrees(dev, vblock)
			}
			return l, nil
		}
	}
	return p.findLocked(dev, vblock)
}

// cached answers a lookup from the cache without a lock, given the
// device's published view (nil if the device is not published).
func (p *Pool) cached(v *deviceView, vblock uint64) (Lookup, bool) {
	if v == nil || vblock >= maxCachedVBlock {
		return Lookup{}, false
	}
	bt, ok := p.cache.get(v.gen.Load(), vblock)
	if !ok {
		return Lookup{}, false
	}
	return unpackView(v, bt), true
}

// findLocked is a lookup the cache did not answer: under the lock, through
// the B-tree, filling the cache.
func (p *Pool) findLocked(dev, vblock uint64) (Lookup, error) {
	cacheable := vblock < maxCachedVBlock
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.failed {
		return Lookup{}, ErrFailed
	}
	d, ok := p.devices[dev]
	if !ok {
		return Lookup{}, fmt.Errorf("device %d: %w", dev, ErrNoDevice)
	}
	gen := d.view.gen.Load()
	if cacheable {
		if bt, ok := p.cache.get(gen, vblock); ok {
			if invariants.Enabled {
				p.assertTreeHolds(dev, vblock, bt)
			}
			return unpackLookup(d, bt), nil
		}
	}
	var v [8]byte
	keys := [2]uint64{dev, vblock}
	if err := btree.Lookup(&p.tr.info, p.root, keys[:], v[:]); err != nil {
		if errors.Is(err, btree.ErrNotFound) {
			return Lookup{}, ErrNotMapped
		}
		return Lookup{}, err
	}
	bt := binary.LittleEndian.Uint64(v[:])
	if cacheable {
		p.cache.fill(gen, vblock, bt)
	}
	return unpackLookup(d, bt), nil
}

func unpackLookup(d *device, v uint64) Lookup {
	b, t := UnpackBlockTime(v)
	return Lookup{DataBlock: b, Time: t, Shared: d.SnapshottedTime > t}
}

func unpackView(d *deviceView, v uint64) Lookup {
	b, t := UnpackBlockTime(v)
	return Lookup{DataBlock: b, Time: t, Shared: d.snapshottedTime.Load() > t}
}

// FindNext returns the first mapped block at or after vblock.
func (p *Pool) FindNext(dev, vblock uint64) (uint64, Lookup, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.failed {
		return 0, Lookup{}, ErrFailed
	}
	d, ok := p.devices[dev]
	if !ok {
		return 0, Lookup{}, fmt.Errorf("device %d: %w", dev, ErrNoDevice)
	}
	var v [8]byte
	keys := [2]uint64{dev, vblock}
	k, err := btree.LookupNext(&p.tr.info, p.root, keys[:], v[:])
	if err != nil {
		if errors.Is(err, btree.ErrNotFound) {
			return 0, Lookup{}, ErrNotMapped
		}
		return 0, Lookup{}, err
	}
	return k, unpackLookup(d, binary.LittleEndian.Uint64(v[:])), nil
}

// WalkMappings calls fn for each mapped block of dev in [begin, end), in
// order, while holding the pool's read lock: fn must not call the pool.
func (p *Pool) WalkMappings(dev, begin, end uint64, fn func(vblock uint64, l Lookup) error) error {
	if begin >= end {
		return nil
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.failed {
		return ErrFailed
	}
	d, ok := p.devices[dev]
	if !ok {
		return fmt.Errorf("device %d: %w", dev, ErrNoDevice)
	}
	var v [8]byte
	if err := btree.Lookup(&p.tr.tlInfo, p.root, []uint64{dev}, v[:]); err != nil {
		return err
	}
	return btree.WalkRange(&p.tr.blInfo, binary.LittleEndian.Uint64(v[:]), begin, end-1, func(k uint64, val []byte) error {
		return fn(k, unpackLookup(d, binary.LittleEndian.Uint64(val)))
	})
}

// AllocDataBlock allocates a data block with a reference count of one.
// Blocks freed in this transaction are not handed out before the next
// commit, nor held blocks (HoldDataBlocks). spacemap.ErrNoSpace when the data device is full.
func (p *Pool) AllocDataBlock() (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return 0, err
	}
	if len(p.held) == 0 {
		return p.dsm.NewBlock()
	}
	return p.dsm.NewBlockExcept(p.isHeld)
}

// Insert maps vblock of dev to dataBlock, stamped with the current pool
// time. The mapping takes over the caller's reference to dataBlock (from
// AllocDataBlock); a replaced mapping's block loses its reference.
func (p *Pool) Insert(dev, vblock, dataBlock uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	d, ok := p.devices[dev]
	if !ok {
		return fmt.Errorf("device %d: %w", dev, ErrNoDevice)
	}
	if dataBlock >= p.dsm.NrBlocks() {
		return fmt.Errorf("data block %d beyond the data device (%d blocks)", dataBlock, p.dsm.NrBlocks())
	}
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], PackBlockTime(dataBlock, p.time))
	keys := [2]uint64{dev, vblock}
	root, inserted, err := btree.Insert(&p.tr.info, p.root, keys[:], v[:])
	if err != nil {
		return p.failOp(err)
	}
	p.root = root
	d.changed = true
	if inserted {
		d.MappedBlocks++
	}
	if vblock < maxCachedVBlock {
		p.cache.set(d.view.gen.Load(), vblock, binary.LittleEndian.Uint64(v[:]))
	}
	return nil
}

// Remove unmaps vblock of dev; its data block loses a reference.
// ErrNotMapped if it was not mapped.
func (p *Pool) Remove(dev, vblock uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	d, ok := p.devices[dev]
	if !ok {
		return fmt.Errorf("device %d: %w", dev, ErrNoDevice)
	}
	keys := [2]uint64{dev, vblock}
	if vblock < maxCachedVBlock {
		p.cache.forget(d.view.gen.Load(), vblock)
	}
	root, err := btree.Remove(&p.tr.info, p.root, keys[:])
	p.root = root
	if errors.Is(err, btree.ErrNotFound) {
		return ErrNotMapped
	}
	if err != nil {
		return p.failOp(err)
	}
	d.MappedBlocks--
	d.changed = true
	return nil
}

// RemoveRange unmaps every mapped block of dev in [begin, end) and
// returns how many there were (__remove_range).
func (p *Pool) RemoveRange(dev, begin, end uint64) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return 0, err
	}
	d, ok := p.devices[dev]
	if !ok {
		return 0, fmt.Errorf("device %d: %w", dev, ErrNoDevice)
	}
	if begin >= end {
		return 0, nil
	}
	d.view.gen.Store(newGen()) // every cached mapping of the device goes
	// Work on the device's own tree: take it out of the top level
	// (keeping a reference so it survives), prune it, put it back.
	var v [8]byte
	if err := btree.Lookup(&p.tr.tlInfo, p.root, []uint64{dev}, v[:]); err != nil {
		return 0, p.failOp(err)
	}
	sub := binary.LittleEndian.Uint64(v[:])
	if err := p.tm.Inc(sub); err != nil {
		return 0, p.failOp(err)
	}
	var err error
	if p.root, err = btree.Remove(&p.tr.tlInfo, p.root, []uint64{dev}); err != nil {
		return 0, p.failOp(err)
	}
	sub, n, err := btree.RemoveRange(&p.tr.blInfo, sub, nil, begin, end)
	if err != nil {
		return 0, p.failOp(err)
	}
	if p.root, _, err = btree.Insert(&p.tr.tlInfo, p.root, []uint64{dev}, btree.LE64(sub)); err != nil {
		return 0, p.failOp(err)
	}
	d.MappedBlocks -= n
	d.changed = true
	return n, nil
}

// MappedBlocks returns how many blocks dev maps.
func (p *Pool) MappedBlocks(dev uint64) (uint64, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	d, ok := p.devices[dev]
	if !ok {
		return 0, fmt.Errorf("device %d: %w", dev, ErrNoDevice)
	}
	return d.MappedBlocks, nil
}

// HighestMappedBlock returns dev's highest mapped virtual block, and false
// if it maps none.
func (p *Pool) HighestMappedBlock(dev uint64) (uint64, bool, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var v [8]byte
	if err := btree.Lookup(&p.tr.tlInfo, p.root, []uint64{dev}, v[:]); err != nil {
		return 0, false, fmt.Errorf("device %d: %w", dev, ErrNoDevice)
	}
	return btree.FindHighestKey(&p.tr.blInfo, binary.LittleEndian.Uint64(v[:]))
}

// DataBlockCount returns the reference count of a data block.
func (p *Pool) DataBlockCount(b uint64) (uint32, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.dsm.Count(b)
}

// FreeDataRuns calls fn for each run [b, e) of free data blocks in
// [begin, end), in order.
func (p *Pool) FreeDataRuns(begin, end uint64, fn func(b, e uint64) error) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.dsm.FreeRuns(begin, end, fn)
}

// IncDataBlock adds a reference to a data block (dm_pool_inc_data_range):
// the engine holds blocks this way while a passdown discard is in flight.
func (p *Pool) IncDataBlock(b uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	return p.dsm.Inc(b)
}

// DecDataBlock drops a reference to a data block.
func (p *Pool) DecDataBlock(b uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	return p.dsm.Dec(b)
}
