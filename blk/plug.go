package blk

import "context"

// Plug batches one submitter's requests so that they can be merged, like
// the kernel's blk_plug: requests submitted through a plug take their tag
// at once (so backpressure still applies) but wait in the plug until
// Finish, until the plug holds Config.PlugLimit requests, or until the
// submitter would have to sleep for a tag. Then they are sorted, contiguous
// requests of the same operation merge into one backend call, and the
// batch goes to the hardware queue's workers.
//
// A Plug belongs to one submitter and is not safe for concurrent use. It
// can be reused after Finish; keeping one per submitter keeps plugging free
// of allocations.
type Plug struct {
	d    *Dispatcher
	sq   *swQueue
	cmds []*cmd
}

// NewPlug returns an empty plug. Each plug is bound to a software queue
// chosen round-robin, which stands in for the submitting CPU.
func (d *Dispatcher) NewPlug() *Plug {
	sq := d.sw[d.rr.Add(1)%uint64(len(d.sw))]
	return &Plug{d: d, sq: sq, cmds: make([]*cmd, 0, d.cfg.PlugLimit)}
}

// Submit adds r to the plug; r.End is called when it completes. As with
// Dispatcher.Submit, an error means r was not accepted. A flush is not
// held back: the plug is finished first and the flush is queued behind it.
// Like any flush it covers only writes that completed before it runs.
func (p *Plug) Submit(ctx context.Context, r *Request) error {
	if r != nil && r.Op == OpFlush {
		p.flush()
		c, err := p.d.prepare(ctx, p.sq, r, nil)
		if err != nil {
			return err
		}
		c.single()
		p.sq.stats.queued.Add(1)
		p.sq.insert(c, c, 1)
		return nil
	}
	c, err := p.d.prepare(ctx, p.sq, r, p)
	if err != nil {
		return err
	}
	p.cmds = append(p.cmds, c)
	if len(p.cmds) >= p.d.cfg.PlugLimit {
		p.flush()
	}
	return nil
}

// Finish sends the plugged requests to the hardware queue. It does not
// wait for them to complete.
func (p *Plug) Finish() { p.flush() }

// Len is the number of requests waiting in the plug.
func (p *Plug) Len() int { return len(p.cmds) }

// flush sorts and merges the batch and inserts the units into the plug's
// software queue in one go.
func (p *Plug) flush() {
	if len(p.cmds) == 0 {
		return
	}
	sortForMerge(p.cmds)
	lim := mergeLimits{maxBytes: p.d.cfg.MaxMergeBytes, maxSegs: p.d.cfg.MaxSegments}
	head, tail, _, merges := mergeSorted(p.cmds, lim)
	n := len(p.cmds)
	clear(p.cmds) // the commands now belong to the queue
	p.cmds = p.cmds[:0]
	p.sq.stats.queued.Add(uint64(n))
	p.sq.stats.merges.Add(uint64(merges))
	p.sq.insert(head, tail, n)
}
