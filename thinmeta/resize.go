package thinmeta

import (
	"fmt"

	"github.com/thind-storage/thind/spacemap"
)

// DataBlocks returns the size of the data device in blocks.
func (p *Pool) DataBlocks() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.dsm.NrBlocks()
}

// CheckDataGrowth reports whether the data space map can grow to n
// blocks: not smaller, addressable, and with the free metadata blocks to
// hold its new bitmaps. Failing halfway through a grow would abort the
// open transaction, so callers check first, before they grow a device.
func (p *Pool) CheckDataGrowth(n uint64) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.checkDataGrowth(n)
}

func (p *Pool) checkDataGrowth(n uint64) error {
	old := p.dsm.NrBlocks()
	switch {
	case n < old:
		return fmt.Errorf("data device: %d blocks to %d: %w", old, n, ErrShrink)
	case n > MaxDataBlock+1:
		return fmt.Errorf("%d data blocks: at most %d are addressable: %w", n, uint64(MaxDataBlock+1), ErrTooManyBlocks)
	}
	// One bitmap block per EntriesPerBlock data blocks; their index
	// entries, and the shadowing along the way, are a small share more.
	perBitmap := uint64(spacemap.EntriesPerBlock)
	bitmaps := (n+perBitmap-1)/perBitmap - (old+perBitmap-1)/perBitmap
	need := bitmaps + bitmaps/8 + 16
	free := uint64(0)
	if f := p.msm.NrFree(); f > p.metadataReserve {
		free = f - p.metadataReserve
	}
	if bitmaps > 0 && need > free {
		return fmt.Errorf("growing the data to %d blocks takes about %d metadata blocks, %d are free (grow the metadata first): %w", n, need, free, ErrNoMetadataSpace)
	}
	return nil
}

// FreeDataBlocks returns how many data blocks can still be allocated.
func (p *Pool) FreeDataBlocks() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.freeDataBlocks()
}

// ResizeData grows the data space map to n blocks. Shrinking is refused,
// and so is a grow the metadata cannot hold (CheckDataGrowth), before
// anything changes.
func (p *Pool) ResizeData(n uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	old := p.dsm.NrBlocks()
	if n == old {
		return nil
	}
	if err := p.checkDataGrowth(n); err != nil {
		return err
	}
	if err := p.dsm.Extend(n - old); err != nil {
		return p.failOp(err)
	}
	return nil
}

// FreeMetadataBlocks returns how many metadata blocks can still be
// allocated, the reserve kept back.
func (p *Pool) FreeMetadataBlocks() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.failed {
		return 0
	}
	if free := p.msm.NrFree(); free > p.metadataReserve {
		return free - p.metadataReserve
	}
	return 0
}

// MetadataBlocks returns the size of the metadata space map in blocks.
func (p *Pool) MetadataBlocks() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.msm.NrBlocks()
}

// ResizeMetadata grows the metadata space map to n blocks, after the
// device itself grew. Space past the format's limit is never used.
func (p *Pool) ResizeMetadata(n uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	n = min(n, maxMetadataBlocks)
	old := p.msm.NrBlocks()
	switch {
	case n == old:
		return nil
	case n < old:
		return fmt.Errorf("metadata device: %d blocks to %d: %w", old, n, ErrShrink)
	}
	p.bm.Grow(n)
	if err := p.msm.Extend(n - old); err != nil {
		return p.failOp(err)
	}
	p.setMetadataReserve()
	return nil
}
