package thinpool

import (
	"context"

	"github.com/thind-storage/thind/discard"
	"github.com/thind-storage/thind/internal/lockorder"
)

// passdown collects the data blocks freed in the open transaction. The
// commit that frees them holds them back from allocation before it lets
// go of the transaction lock (holdPassdown); they are then punched out of
// the data device without the lock, so that provisioning and the next
// discards' unmapping go on meanwhile, and made allocatable once punched
// (punchHeld), as dm-thin holds them from its commit to its passdown's
// end. Before the commit something committed may still map them; until
// the punch is done a block reused by another volume could lose its new
// data to the hole. The discards that freed them wait for the commit and
// its punch (awaitPassdown).
type passdown struct {
	mu     lockorder.Mutex[lockorder.Leaf]
	blocks discard.ExtentBuilder
	count  int
	byThin map[*Thin]uint64 // blocks per thin, for its counters
}

// heldBlocks are the blocks a commit freed, held from allocation until
// their holes are punched.
type heldBlocks struct {
	blocks []discard.BlockRange
	bytes  []discard.ByteRange
	byThin map[*Thin]uint64
}

// maxPendingPassdown bounds the blocks waiting for a commit; past it the
// unmapper commits early.
const maxPendingPassdown = 1 << 16

func (p *Pool) pendingPassdown(t *Thin, b uint64) {
	p.pd.mu.Lock()
	p.pd.blocks.Add(b)
	p.pd.count++
	if p.pd.byThin == nil {
		p.pd.byThin = map[*Thin]uint64{}
	}
	p.pd.byThin[t]++
	p.pd.mu.Unlock()
}

func (p *Pool) passdownPending() int {
	p.pd.mu.Lock()
	defer p.pd.mu.Unlock()
	return p.pd.count
}

// dropPassdown forgets the pending blocks: the transaction that freed them
// was aborted, so they are in use again.
func (p *Pool) dropPassdown() {
	p.pd.mu.Lock()
	p.pd.blocks.Reset()
	p.pd.count = 0
	clear(p.pd.byThin)
	p.pd.mu.Unlock()
}

// holdPassdown takes the blocks freed by the transaction just committed
// and holds them back from allocation; nil if there are none. Called with
// the transaction lock held exclusively, so nothing can allocate them
// between the commit and the hold.
func (p *Pool) holdPassdown() *heldBlocks {
	h := p.takePassdown()
	if h == nil {
		return nil
	}
	for _, e := range h.blocks {
		p.md.HoldDataBlocks(e.Begin, e.End)
	}
	return h
}

// takePassdown empties the pending list into heldBlocks.
func (p *Pool) takePassdown() *heldBlocks {
	p.pd.mu.Lock()
	defer p.pd.mu.Unlock()
	if p.pd.count == 0 {
		return nil
	}
	h := &heldBlocks{byThin: p.pd.byThin}
	bytes, err := p.pd.blocks.AppendBytes(nil, p.bs)
	if err == nil {
		h.bytes = bytes
		h.blocks = append(h.blocks, p.pd.blocks.Extents()...)
	}
	p.pd.blocks.Reset()
	p.pd.count = 0
	p.pd.byThin = nil
	if err != nil {
		// Passdown is advisory: the blocks are free either way.
		p.log.Warn("discard passdown", "err", err)
		return nil
	}
	return h
}

// punchHeld punches the held blocks out of the data device, then makes
// them allocatable. Called without the transaction lock by the goroutine
// that committed them, which still holds Pool.hold: the next commit
// starts after the punch, and the discards waiting for this commit are
// answered after it.
func (p *Pool) punchHeld(h *heldBlocks) {
	if hk := p.hooks.Load(); hk != nil && hk.passdown != nil {
		hk.passdown()
	}
	punched := true
	for _, e := range h.bytes {
		if err := p.data.Discard(context.Background(), int64(e.Off), int64(e.Len)); err != nil {
			// Passdown is advisory: the blocks are free either way.
			p.log.Warn("discard passdown failed", "off", e.Off, "len", e.Len, "err", err)
			punched = false
			break
		}
	}
	for _, e := range h.blocks {
		p.md.ReleaseDataBlocks(e.Begin, e.End)
	}
	if punched {
		for t, n := range h.byThin {
			t.st.passdownBytes.Add(n * p.bs)
		}
	}
	if Mode(p.mode.Load()) == ModeOutOfDataSpace && p.md.FreeDataBlocks() > 0 {
		p.signalSpace() // the released blocks are allocatable
	}
}
