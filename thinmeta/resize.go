package thinmeta

import "fmt"

// DataBlocks returns the size of the data device in blocks.
func (p *Pool) DataBlocks() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.dsm.NrBlocks()
}

// FreeDataBlocks returns how many data blocks can still be allocated.
func (p *Pool) FreeDataBlocks() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.dsm.NrFree()
}

// ResizeData grows the data space map to n blocks. Shrinking is refused.
func (p *Pool) ResizeData(n uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	old := p.dsm.NrBlocks()
	switch {
	case n == old:
		return nil
	case n < old:
		return fmt.Errorf("data device: %d blocks to %d: %w", old, n, ErrShrink)
	case n > MaxDataBlock+1:
		return fmt.Errorf("%d data blocks: at most %d are addressable", n, uint64(MaxDataBlock+1))
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
