package thinpool

import (
	"context"
)

// readRun is a piece of a read mapped to contiguous data blocks.
type readRun struct {
	dataOff  uint64
	from, to int // in the caller's buffer
}

// maxReadBatch bounds the blocks a read checks against the reuses count at
// once: a batch that a commit races is read again.
const maxReadBatch = 32

// ReadAt reads len(buf) bytes at off. Unmapped blocks read as zeroes with
// no data I/O; mapped ones are read from the data device, contiguous data
// blocks in one request.
//
// Reads take no prison cell (the kernel's do), and they do not join the
// thin's allIO either: counting every read in one shared set cost 3% of a
// 4 KiB page-cache read with 16 readers on two CPUs, as the set's counter
// moved between the CPUs twice per read. A read instead checks, after its
// data is in buf, that no commit or abort has let the blocks it looked up
// be reused or punched meanwhile (the pool's reuses count, read like a
// seqcount); if one has, it reads those blocks again, this time counted
// in allIO so that the next commit waits for it. A data block is never
// reused before the commit after it was freed (not even one provisioned
// in the same transaction), so a read that passes the check read bytes
// its volume held: a read racing with an unmap or a remap of its block
// is simply ordered before the change.
func (t *Thin) ReadAt(ctx context.Context, buf []byte, off uint64) error {
	if err := t.checkRange(off, uint64(len(buf))); err != nil {
		return err
	}
	if Mode(t.p.mode.Load()) == ModeFail {
		return ErrFailed
	}
	for pos := 0; pos < len(buf); {
		next, err := t.readBatch(ctx, buf, off, pos)
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		pos = next
	}
	return nil
}

// TryReadAt reads len(buf) bytes at off, as ReadAt would, only if that
// takes no waiting: every block mapped and its mapping in the lookup
// cache, the blocks one run on the data device, and the bytes in the data
// store's memory (blk's TryRead). Otherwise it returns false, with buf
// undefined, and the caller calls ReadAt. ReadAt's check of the pool's
// reuses count guards it too: a read a commit raced returns false.
func (t *Thin) TryReadAt(buf []byte, off uint64) (bool, error) {
	if err := t.checkRange(off, uint64(len(buf))); err != nil {
		return false, err
	}
	// The test hooks stand for waits, which this must not have.
	if len(buf) == 0 || Mode(t.p.mode.Load()) == ModeFail || t.p.hooks.Load() != nil {
		return false, nil
	}
	bs := t.p.bs
	seq := t.p.reuses.Load()
	first, last := off/bs, (off+uint64(len(buf))-1)/bs
	if last-first >= maxReadBatch {
		return false, nil
	}
	var firstData uint64
	for v := first; v <= last; v++ {
		l, ok := t.finder.FindCached(v)
		switch {
		case !ok:
			return false, nil
		case v == first:
			firstData = l.DataBlock
		case l.DataBlock != firstData+(v-first):
			return false, nil
		}
	}
	ok, err := t.p.data.TryRead(buf, int64(firstData*bs+off%bs))
	if !ok || err != nil || t.p.reuses.Load() != seq {
		return false, err
	}
	return true, nil
}

// readBatch reads from buf[pos:] the part of at most maxReadBatch blocks,
// and returns where it stopped.
func (t *Thin) readBatch(ctx context.Context, buf []byte, off uint64, pos int) (int, error) {
	reuses := &t.p.reuses
	seq := reuses.Load()
	next, err := t.mapAndRead(ctx, buf, off, pos)
	if reuses.Load() == seq {
		return next, err
	}
	t.st.readRetries.Add(1)
	e := t.allIO.Inc()
	defer t.endIO(e)
	return t.mapAndRead(ctx, buf, off, pos)
}

// mapAndRead looks up the blocks of one batch and reads them, in one
// request per run of blocks contiguous both in buf and on the data device.
// The pending run is all it keeps: an array of runs made every read clear
// it first, which perf showed as half of this function's time.
func (t *Thin) mapAndRead(ctx context.Context, buf []byte, off uint64, pos int) (int, error) {
	bs := t.p.bs
	var run readRun
	var rd runReader
	for n := 0; n < maxReadBatch && pos < len(buf); n++ {
		cur := off + uint64(pos)
		v, o := cur/bs, cur%bs
		chunk := int(min(bs-o, uint64(len(buf)-pos)))
		l, mapped, err := t.find(v)
		if err != nil {
			return pos, rd.abandon(t.p, err)
		}
		if !mapped {
			clear(buf[pos : pos+chunk])
		} else if dataOff := l.DataBlock*bs + o; run.to == pos && run.dataOff+uint64(run.to-run.from) == dataOff {
			run.to += chunk
		} else {
			if err := rd.add(ctx, t, buf, run); err != nil {
				return pos, rd.abandon(t.p, err)
			}
			run = readRun{dataOff: dataOff, from: pos, to: pos + chunk}
		}
		pos += chunk
	}
	if err := rd.add(ctx, t, buf, run); err != nil {
		return pos, rd.abandon(t.p, err)
	}
	return pos, rd.finish(ctx, t, buf)
}

// runReader issues the runs of one read. A lone run is read directly in
// the caller's goroutine, which is faster for one request than going
// through a worker (see blk's direct issue); from the second run on, the
// runs go through a batch, so that they are read in parallel and runs
// that meet on the data device (with an unmapped block between them in
// the volume) merge into one preadv.
type runReader struct {
	first readRun // the first run, held until it is known not to be alone
	b     *ioBatch
}

// add takes one more run; an empty run is nothing.
func (rd *runReader) add(ctx context.Context, t *Thin, buf []byte, r readRun) error {
	if r.to == r.from {
		return nil
	}
	if h := t.p.hooks.Load(); h != nil && h.readMapped != nil {
		h.readMapped()
	}
	if rd.b == nil {
		if rd.first.to == rd.first.from {
			rd.first = r
			return nil
		}
		rd.b = t.p.getBatch()
		f := rd.first
		if err := rd.b.read(ctx, buf[f.from:f.to], f.dataOff); err != nil {
			return err
		}
	}
	return rd.b.read(ctx, buf[r.from:r.to], r.dataOff)
}

// finish reads a lone run, or waits for the batch.
func (rd *runReader) finish(ctx context.Context, t *Thin, buf []byte) error {
	if rd.b == nil {
		f := rd.first
		if f.to == f.from {
			return nil
		}
		return t.p.data.Read(ctx, buf[f.from:f.to], int64(f.dataOff))
	}
	err := rd.b.wait()
	t.p.putBatch(rd.b)
	return err
}

// abandon waits for runs already submitted (their buffers are the
// caller's) and returns err.
func (rd *runReader) abandon(p *Pool, err error) error {
	if rd.b != nil {
		rd.b.wait()
		p.putBatch(rd.b)
	}
	return err
}
