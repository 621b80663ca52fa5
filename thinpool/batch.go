package thinpool

import (
	"context"
	"sync/atomic"

	"github.com/thind-storage/thind/bioprison"
	"github.com/thind-storage/thind/blk"
)

// batchPieces is the number of pieces a batch holds before it sends them
// and waits: a 1 MiB request over 64 KiB blocks is 16 pieces, and the
// dispatcher's plug sends itself on at 32 (blk.Config.PlugLimit) anyway.
const batchPieces = 32

// ioBatch carries the pieces of one request that touches the data device
// in several places (a read or an in-place write spanning data blocks)
// through a blk.Plug, and waits for all
// of them, like a bio chain: the first error wins. The plug sorts the
// pieces and merges those contiguous on the data device into one
// preadv/pwritev2, and the hardware queues' workers issue the units in
// parallel.
//
// A batch belongs to one submitter at a time. It is reused through the
// pool's batches so that its Requests, plug and completion are made once:
// steady-state I/O through a batch does not allocate.
type ioBatch struct {
	plug *blk.Plug
	reqs [batchPieces]blk.Request
	n    int // reqs in use

	// ios are all-I/O entries of the thin, ended once the pieces they
	// cover have completed: a commit waits for those writes.
	ios  [batchPieces]bioprison.DeferredEntry
	nio  int
	thin *Thin

	// pending counts pieces not yet completed, plus one held by the
	// submitter until it waits, so that done is sent exactly once.
	pending atomic.Int32
	failed  atomic.Bool
	err     error // the first error; written before its piece's pending decrement
	done    chan struct{}
	end     func(*blk.Request, error) // b.complete, bound once
}

func newBatch(d *blk.Dispatcher) *ioBatch {
	b := &ioBatch{plug: d.NewPlug(), done: make(chan struct{}, 1)}
	b.pending.Store(1)
	b.end = b.complete
	return b
}

// getBatch takes a batch from the pool's free list.
func (p *Pool) getBatch() *ioBatch { return p.batches.Get().(*ioBatch) }

// putBatch returns a waited-for batch to the pool's free list.
func (p *Pool) putBatch(b *ioBatch) { p.batches.Put(b) }

// complete is the End of every piece; it runs on a dispatcher worker and
// must not block: done has room for its one token.
func (b *ioBatch) complete(_ *blk.Request, err error) {
	if err != nil && b.failed.CompareAndSwap(false, true) {
		b.err = err
	}
	if b.pending.Add(-1) == 0 {
		b.done <- struct{}{}
	}
}

// read adds a read of buf at off.
func (b *ioBatch) read(ctx context.Context, buf []byte, off uint64) error {
	return b.submit(ctx, blk.Request{Op: blk.OpRead, Buf: buf, Off: int64(off)})
}

// write adds a write of buf at off; with fua it is durable when the batch
// has been waited for.
func (b *ioBatch) write(ctx context.Context, buf []byte, off uint64, fua bool) error {
	return b.submit(ctx, blk.Request{Op: blk.OpWrite, Buf: buf, Off: int64(off), FUA: fua})
}

// holdIO keeps e, an entry of t's all-I/O set, until the batch's pieces
// have completed.
func (b *ioBatch) holdIO(t *Thin, e bioprison.DeferredEntry) {
	b.thin = t
	b.ios[b.nio] = e
	b.nio++
}

// full reports whether the batch has room for no more pieces (or held
// entries): the caller waits for it first.
func (b *ioBatch) full() bool { return b.n == batchPieces || b.nio == batchPieces }

// submit adds one piece, first waiting for the batch if it is full.
func (b *ioBatch) submit(ctx context.Context, r blk.Request) error {
	if b.full() {
		if err := b.wait(); err != nil {
			return err
		}
	}
	q := &b.reqs[b.n]
	r.End = b.end
	*q = r
	b.n++
	b.pending.Add(1)
	if err := b.plug.Submit(ctx, q); err != nil {
		// Not accepted: its End will not run.
		b.pending.Add(-1)
		if b.failed.CompareAndSwap(false, true) {
			b.err = err
		}
		return err
	}
	return nil
}

// wait sends the plugged pieces and blocks until every piece submitted has
// completed, then ends the held all-I/O entries and makes the batch empty
// again. It returns the first error of any piece. It cannot give up early
// (the pieces' buffers stay in use until they complete), so it takes no
// context: every piece completes or fails on its own.
func (b *ioBatch) wait() error {
	if b.n > 0 {
		b.plug.Finish()
	}
	if b.pending.Add(-1) != 0 {
		<-b.done
	}
	err := b.err
	b.err = nil
	b.failed.Store(false)
	b.pending.Store(1)
	for i := range b.n {
		b.reqs[i] = blk.Request{} // do not keep callers' buffers alive
	}
	b.n = 0
	for i := range b.nio {
		b.thin.endIO(b.ios[i])
	}
	b.nio, b.thin = 0, nil
	return err
}
