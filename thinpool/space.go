package thinpool

import (
	"context"
	"time"
)

// waitForSpace is called without the transaction lock when the data
// device is full. Blocks freed in this transaction are allocatable once it
// commits, so it commits first; then, unless the pool errors at once, it
// waits for the data device to grow (or space to be freed) for up to
// NoSpaceTimeout, as dm-thin's out-of-data-space mode queues bios.
func (p *Pool) waitForSpace(ctx context.Context) error {
	if p.mdDirty.Load() {
		if err := p.Commit(ctx); err != nil {
			return err
		}
		if p.md.FreeDataBlocks() > 0 {
			return nil
		}
	}
	p.setMode(ModeOutOfDataSpace, "data device full")
	if p.cfg.ErrorIfNoSpace {
		p.st.noSpaceErrors.Add(1)
		return ErrNoSpace
	}
	p.st.noSpaceWaits.Add(1)
	wake := p.spaceWait()
	if p.md.FreeDataBlocks() > 0 {
		return nil
	}
	timer := time.NewTimer(p.cfg.NoSpaceTimeout)
	defer timer.Stop()
	select {
	case <-wake:
		return nil
	case <-timer.C:
		p.st.noSpaceErrors.Add(1)
		return ErrNoSpace
	case <-ctx.Done():
		return ctx.Err()
	case <-p.closing:
		return ErrClosed
	}
}

// checkLowWater runs OnLowWater once each time free data blocks drop below
// the low-water mark (dm-thin's "reached low water mark" event).
func (p *Pool) checkLowWater() {
	if p.cfg.LowWaterBlocks == 0 {
		return
	}
	free := p.md.FreeDataBlocks()
	if free >= p.cfg.LowWaterBlocks {
		p.lowWaterOn.Store(false)
		return
	}
	if p.lowWaterOn.CompareAndSwap(false, true) {
		p.log.Warn("data space low-water mark reached", "free_blocks", free, "low_water_blocks", p.cfg.LowWaterBlocks)
		if fn := p.cfg.OnLowWater; fn != nil {
			p.events.post(func() { fn(free) })
		}
	}
}
