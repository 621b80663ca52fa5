package thinpool

import (
	"context"

	"github.com/thind-storage/thind/discard"
	"github.com/thind-storage/thind/internal/lockorder"
)

// passdown collects the data blocks freed in the open transaction. They
// are punched out of the data device right after the commit that frees
// them, while the commit still holds the transaction lock: before it
// nothing committed may still map them, after it nothing may reuse them
// yet. The discards that freed them wait for that commit (awaitPassdown).
type passdown struct {
	mu     lockorder.Mutex[lockorder.Leaf]
	blocks discard.ExtentBuilder
	count  int
	byThin map[*Thin]uint64 // blocks per thin, for its counters
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

// runPassdown punches the blocks freed by the transaction just committed.
// Called with the transaction lock held exclusively.
func (p *Pool) runPassdown() {
	p.pd.mu.Lock()
	if p.pd.count == 0 {
		p.pd.mu.Unlock()
		return
	}
	extents, err := p.pd.blocks.AppendBytes(nil, p.bs)
	byThin := p.pd.byThin
	p.pd.blocks.Reset()
	p.pd.count = 0
	p.pd.byThin = nil
	p.pd.mu.Unlock()
	if err != nil {
		p.log.Warn("discard passdown", "err", err)
		return
	}
	for _, e := range extents {
		if err := p.data.Discard(context.Background(), int64(e.Off), int64(e.Len)); err != nil {
			// Passdown is advisory: the blocks are free either way.
			p.log.Warn("discard passdown failed", "off", e.Off, "len", e.Len, "err", err)
			return
		}
	}
	for t, n := range byThin {
		t.st.passdownBytes.Add(n * p.bs)
	}
}
