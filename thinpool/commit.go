package thinpool

import (
	"context"
	"sync"
	"time"
)

// commitReq asks the committer for a commit. flush asks for every
// completed write to be durable too (FLUSH, FUA, snapshots); without it
// only the metadata must be committed and its passdown run (a discard
// waiting to be answered), and the data device is flushed only if the
// transaction needs it.
type commitReq struct {
	done  chan error
	flush bool
}

// committer runs commits: when asked (FLUSH, FUA, snapshots, space,
// discards), and every CommitInterval when the metadata changed. Callers
// that asked while a commit was running wait for the next one, which
// starts after their request: a commit covers every write completed
// before it was asked for.
func (p *Pool) committer() {
	defer p.wg.Done()
	tick := time.NewTicker(p.cfg.CommitInterval)
	defer tick.Stop()
	var batch []commitReq
	for {
		batch = batch[:0]
		select {
		case <-p.closing:
			p.failPending()
			return
		case c := <-p.commits:
			batch = append(batch, c)
		case <-tick.C:
			if !p.mdDirty.Load() {
				continue
			}
		}
		// Everyone queued so far rides on this commit: concurrent
		// discards (fstrim sends many) share one.
	drain:
		for {
			select {
			case c := <-p.commits:
				batch = append(batch, c)
			default:
				break drain
			}
		}
		flush := false
		for _, c := range batch {
			flush = flush || c.flush
		}
		p.hold.Lock()
		err := p.commitNow(flush)
		p.hold.Unlock()
		for _, c := range batch {
			c.done <- err
		}
	}
}

func (p *Pool) failPending() {
	for {
		select {
		case c := <-p.commits:
			c.done <- ErrClosed
		default:
			return
		}
	}
}

// Commit makes every write that completed before the call durable: the
// data device is flushed, then the metadata committed.
func (p *Pool) Commit(ctx context.Context) error {
	return p.requestCommit(ctx, true)
}

// commitForPassdown returns once a commit that started after the call
// has committed the open transaction and punched the blocks it freed.
func (p *Pool) commitForPassdown(ctx context.Context) error {
	return p.requestCommit(ctx, false)
}

func (p *Pool) requestCommit(ctx context.Context, flush bool) error {
	if p.closed.Load() {
		return ErrClosed
	}
	c := commitReq{done: make(chan error, 1), flush: flush}
	select {
	case p.commits <- c:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.closing:
		return ErrClosed
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitNow commits the metadata, flushing the data device first when
// asked (FLUSH, FUA, snapshots, shutdown: every completed write must be
// durable) or when the transaction needs it: committed metadata must
// never map a block whose data (or zeroing, or copy) is not on stable
// storage, unless the block was a hole, which reads zeros after a crash
// as an unflushed write may. Timer commits that only map holes skip the
// flush, as dm-thin's periodic commit does. The blocks the commit freed
// for passdown are punched after it, without the transaction lock, and
// before commitNow returns. Callers hold Pool.hold, so commits and their
// punches never overlap.
func (p *Pool) commitNow(flushRequested bool) error {
	held, err := p.commitLocked(flushRequested)
	if held != nil {
		p.punchHeld(held)
	}
	return err
}

// commitLocked is commitNow under the transaction lock, up to the hold
// of the blocks the commit freed, which the caller then punches.
func (p *Pool) commitLocked(flushRequested bool) (*heldBlocks, error) {
	start := time.Now()
	if p.mdDirty.Load() && (flushRequested || p.dataFirst.Load()) {
		// Flush most of the new blocks' data before taking the lock, while
		// I/O goes on; the flush under the lock then has only what was
		// written meanwhile, and provisioning waits that much less.
		if err := p.data.Flush(context.Background()); err != nil {
			p.st.commitErrors.Add(1)
			return nil, err
		}
	}
	p.txn.Lock()
	defer p.txn.Unlock()
	if Mode(p.mode.Load()) == ModeFail {
		return nil, ErrFailed
	}
	// Under the lock nothing maps blocks, so the flag covers everything
	// this commit will cover.
	if p.dataFirst.Swap(false) || flushRequested {
		if err := p.data.Flush(context.Background()); err != nil {
			p.dataFirst.Store(true)
			p.st.commitErrors.Add(1)
			return nil, err
		}
	}
	if !p.mdDirty.Load() {
		return nil, nil
	}
	if Mode(p.mode.Load()) == ModeReadOnly && !p.metaFull.Load() {
		// Read-only mode after a failure was entered with an abort:
		// nothing to commit. (Out of metadata space, the reserve is
		// there to commit what was done.)
		p.mdDirty.Store(false)
		return nil, nil
	}
	if err := p.md.Commit(); err != nil {
		p.st.commitErrors.Add(1)
		return nil, p.metadataFailed("commit", err)
	}
	p.mdDirty.Store(false)
	p.clearChanged()
	// From here blocks this transaction freed may be reused, but for
	// those passed down, held until punched. Reads that may have them in
	// hand will look again; first let every write that may still have
	// them in hand finish.
	p.reuses.Add(1)
	p.waitInFlight()
	held := p.holdPassdown()
	if Mode(p.mode.Load()) == ModeOutOfDataSpace && p.md.FreeDataBlocks() > 0 {
		p.signalSpace() // this commit made freed blocks allocatable
	}
	p.st.commits.Add(1)
	p.st.commitNanos.Add(uint64(time.Since(start)))
	return held, nil
}

// clearChanged marks every open thin as having no uncommitted change.
// Called with the transaction lock held exclusively.
func (p *Pool) clearChanged() {
	p.thinsMu.Lock()
	for _, t := range p.thins {
		t.changed.Store(false)
	}
	p.thinsMu.Unlock()
}

// waitInFlight waits for the I/O in flight on every open thin.
func (p *Pool) waitInFlight() {
	p.thinsMu.Lock()
	thins := make([]*Thin, 0, len(p.thins))
	for _, t := range p.thins {
		thins = append(thins, t)
	}
	p.thinsMu.Unlock()
	for _, t := range thins {
		t.waitEarlierIO(context.Background())
	}
}

// HoldCommits stops background commits until release is called, and
// returns a commit function for the holder, which is the only one that
// may commit meanwhile. A caller that must get several metadata changes
// into one commit (a catalog operation and its transaction id) holds
// commits around them; requests to commit made by others meanwhile wait.
func (p *Pool) HoldCommits() (commit func() error, release func()) {
	p.hold.Lock()
	var once sync.Once
	return func() error { return p.commitNow(true) }, func() { once.Do(p.hold.Unlock) }
}

// Abort drops every uncommitted metadata change, of every thin, and
// reopens the last commit, as dm-thin does after a failed operation.
func (p *Pool) Abort() error {
	p.txn.Lock()
	defer p.txn.Unlock()
	p.dropPassdown()
	err := p.md.Abort()
	// The blocks the transaction provisioned are free again. As after a
	// commit, reads that may have them in hand will look again, and
	// writes still on their way to them land before the lock lets anyone
	// allocate.
	p.reuses.Add(1)
	p.waitInFlight()
	if err != nil {
		p.setMode(ModeFail, "abort failed: "+err.Error())
		return err
	}
	p.mdDirty.Store(false)
	p.clearChanged()
	return nil
}
