package thinpool

import (
	"context"
	"errors"
	"fmt"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/internal/lockorder"
)

// cleanBlocks records the free data blocks known to be holes on stable
// storage: never written, or punched, in a sparse data file, as found at
// open and when the data device grows. Provisioning such a block needs
// neither zeroing (a hole reads as zeros) nor a data flush before the
// commit that maps it: after a crash it reads zeros, which an unflushed
// write may leave anyway. Any other block may hold another volume's old
// bytes, so mapping it waits for its new data to be durable. A block is
// clean only until its first allocation: bits are set by the scans alone.
type cleanBlocks struct {
	mu   lockorder.Mutex[lockorder.Leaf]
	bits []uint64
}

// take reports whether block b was clean, and makes it not clean.
func (c *cleanBlocks) take(b uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, m := b/64, uint64(1)<<(b%64)
	if w >= uint64(len(c.bits)) || c.bits[w]&m == 0 {
		return false
	}
	c.bits[w] &^= m
	return true
}

// set marks blocks [b, e) clean.
func (c *cleanBlocks) set(b, e uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if need := (e + 63) / 64; need > uint64(len(c.bits)) {
		c.bits = append(c.bits, make([]uint64, need-uint64(len(c.bits)))...)
	}
	for ; b < e; b++ {
		c.bits[b/64] |= 1 << (b % 64)
	}
}

// findClean marks the free data blocks in [begin, end) that are holes in
// the data device. Nothing may allocate data blocks meanwhile (the caller
// holds the transaction lock exclusively, or the pool is not yet in
// service). The flush first makes what the scan sees what a crash would
// leave.
func (p *Pool) findClean(begin, end uint64) error {
	if p.cfg.IgnoreHoles || begin >= end {
		return nil
	}
	if err := p.data.Flush(context.Background()); err != nil {
		return err
	}
	bs := p.bs
	err := p.data.Holes(int64(begin*bs), int64((end-begin)*bs), func(off, n int64) error {
		// Only whole blocks inside the hole count.
		hb := (uint64(off) + bs - 1) / bs
		he := (uint64(off) + uint64(n)) / bs
		if hb >= he {
			return nil
		}
		return p.md.FreeDataRuns(hb, he, func(b, e uint64) error {
			p.clean.set(b, e)
			return nil
		})
	})
	if errors.Is(err, blk.ErrNoHoles) {
		return nil // every block is treated as possibly holding old data
	}
	if err != nil {
		return fmt.Errorf("finding holes in the data device: %w", err)
	}
	return nil
}
