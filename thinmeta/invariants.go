package thinmeta

import (
	"encoding/binary"

	"github.com/thind-storage/thind/btree"
	"github.com/thind-storage/thind/internal/invariants"
)

// assertCacheAgrees checks, in invariants builds, a lookup the cache
// answered without the lock: under the lock, while no change can run, a
// mapping the cache still holds must be the one the mapping tree holds.
// (The lock-free answer itself may be a moment late; the cache may not be
// wrong.)
func (p *Pool) assertCacheAgrees(dev, vblock uint64) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.failed {
		return
	}
	d, ok := p.devices[dev]
	if !ok {
		return
	}
	if bt, ok := p.cache.get(d.view.gen.Load(), vblock); ok {
		p.assertTreeHolds(dev, vblock, bt)
	}
}

// assertTreeHolds checks, under the lock, that the mapping tree maps
// vblock of dev to the block_time value the cache returned.
func (p *Pool) assertTreeHolds(dev, vblock, cached uint64) {
	var v [8]byte
	keys := [2]uint64{dev, vblock}
	if err := btree.Lookup(&p.tr.info, p.root, keys[:], v[:]); err != nil {
		invariants.Violation("lookup cache: device %d block %d cached as %#x, the mapping tree says %v", dev, vblock, cached, err)
	}
	if tree := binary.LittleEndian.Uint64(v[:]); tree != cached {
		invariants.Violation("lookup cache: device %d block %d cached as %#x, the mapping tree holds %#x", dev, vblock, cached, tree)
	}
}
