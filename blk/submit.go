package blk

import (
	"context"
	"unsafe"
)

// Read fills buf from the backend at off. It returns once the data is in
// buf, or with an error; ctx bounds only the wait for a tag, since an
// issued read cannot be taken back from the kernel.
func (d *Dispatcher) Read(ctx context.Context, buf []byte, off int64) error {
	return d.syncIO(ctx, OpRead, buf, 0, off, int64(len(buf)), false)
}

// Write stores buf at off. With fua the data is durable when Write
// returns. ctx bounds only the wait for a tag.
func (d *Dispatcher) Write(ctx context.Context, buf []byte, off int64, fua bool) error {
	return d.syncIO(ctx, OpWrite, buf, 0, off, int64(len(buf)), fua)
}

// Discard releases [off, off+length) on the backend; on files it reads
// back as zeros afterwards.
func (d *Dispatcher) Discard(ctx context.Context, off, length int64) error {
	return d.syncIO(ctx, OpDiscard, nil, 0, off, length, false)
}

// WriteZeroes makes [off, off+length) read back as zeros.
func (d *Dispatcher) WriteZeroes(ctx context.Context, off, length int64) error {
	return d.syncIO(ctx, OpWriteZeroes, nil, 0, off, length, false)
}

// Copy makes [dst, dst+length) read as [src, src+length) does; the ranges
// must not overlap. It clones or copies in the kernel where the backend
// can (see CopyBackend), else reads and writes through a buffer of the
// dispatcher's. Like a write, it is durable after a Flush.
func (d *Dispatcher) Copy(ctx context.Context, src, dst, length int64) error {
	return d.syncIO(ctx, OpCopy, nil, src, dst, length, false)
}

// Flush makes every write completed before it durable.
func (d *Dispatcher) Flush(ctx context.Context) error {
	return d.syncIO(ctx, OpFlush, nil, 0, 0, 0, false)
}

// TryRead reads buf at off only if that takes no waiting: the hardware
// queue has no backlog and a free tag, and the backend has the bytes in
// memory (NoWaitReader). It returns false, having read nothing the caller
// may use, otherwise; the caller then reads as usual. It is for a caller
// that must not block, such as a connection's reader serving a request
// itself at queue depth 1.
func (d *Dispatcher) TryRead(buf []byte, off int64) (bool, error) {
	nw, ok := d.be.(NoWaitReader)
	if !ok {
		return false, nil
	}
	n := int64(len(buf))
	if err := d.check(OpRead, 0, off, n, buf); err != nil {
		return false, err
	}
	sq := d.swqForSync(OpRead, buf, off)
	if !sq.enter(&d.closing) {
		return false, ErrClosed
	}
	defer sq.exit(&d.closing)
	h := sq.hw
	if h.backlog.Load() != 0 {
		return false, nil
	}
	tag, ok := h.tags.tryGet(&sq.hint)
	if !ok {
		return false, nil
	}
	defer h.tags.put(tag)
	start := int64(-1)
	if tag&latencySampleMask == 0 {
		start = d.now()
	}
	done, err := nw.ReadAtNoWait(buf, off)
	if done || err != nil {
		err = ioError(OpRead, off, n, 1, err)
		d.record(sq, OpRead, n, true, start, err)
	}
	return done && err == nil, err
}

// syncIO submits one request and waits for it. When the hardware queue has
// no backlog the request is issued right here, in the caller's goroutine
// (blk_mq_try_issue_directly): the caller is going to block until the I/O
// is done anyway, and handing it to a worker would only add two goroutine
// switches. Otherwise it waits its turn behind the queued requests.
func (d *Dispatcher) syncIO(ctx context.Context, op Op, buf []byte, src, off, n int64, fua bool) error {
	if err := d.check(op, src, off, n, buf); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sq := d.swqForSync(op, buf, off)
	if !sq.enter(&d.closing) {
		return ErrClosed
	}
	defer sq.exit(&d.closing)
	h := sq.hw
	if h.backlog.Load() == 0 {
		if tag, ok := h.tags.tryGet(&sq.hint); ok {
			return d.issueDirect(sq, tag, op, buf, src, off, n, fua)
		}
	}
	c, err := d.alloc(ctx, sq, nil)
	if err != nil {
		return err
	}
	if h.backlog.Load() == 0 {
		// The queue drained while this waited for a tag.
		return d.issueDirect(sq, c.tag, op, buf, src, off, n, fua)
	}
	c.op, c.fua, c.src, c.off, c.n, c.buf = op, fua, src, off, n, buf
	c.single()
	c.wait = true
	sq.stats.queued.Add(1)
	sq.insert(c, c, 1)
	err = <-c.done
	d.release(c)
	return err
}

// issueDirect issues a request in its submitter's goroutine and frees its
// tag. It leaves the tag's cmd alone (only a FUA write borrows its iovec):
// nothing but this goroutine ever sees a request issued directly, and
// filling in and clearing the cmd's three cache lines cost about 4% of a
// 4 KiB page-cache read when 16 submitters share two CPUs (A/B runs of
// thinpool's BenchmarkRandom4K).
func (d *Dispatcher) issueDirect(sq *swQueue, tag uint32, op Op, buf []byte, src, off, n int64, fua bool) error {
	h := sq.hw
	start := int64(-1)
	if tag&latencySampleMask == 0 {
		start = d.now()
	}
	err := ioError(op, off, n, 1, d.issueOne(op, buf, src, off, n, fua, &h.cmds[tag].iov))
	d.record(sq, op, n, true, start, err)
	h.tags.put(tag)
	return err
}

// Submit queues r and returns; r.End is called when it completes. If
// Submit returns an error, r was not queued and End will not be called.
// r must not be submitted again before its End has run.
// Submit blocks only while the hardware queue has no free tag, and then
// honours ctx.
func (d *Dispatcher) Submit(ctx context.Context, r *Request) error {
	sq := d.swqFor(uintptr(unsafe.Pointer(r)))
	c, err := d.prepare(ctx, sq, r, nil)
	if err != nil {
		return err
	}
	c.single()
	sq.stats.queued.Add(1)
	sq.insert(c, c, 1)
	return nil
}

// prepare checks r, admits it and binds it to a tagged command.
func (d *Dispatcher) prepare(ctx context.Context, sq *swQueue, r *Request, p *Plug) (*cmd, error) {
	if r == nil {
		return nil, ErrNilRequest
	}
	n := r.length()
	if err := d.check(r.Op, r.Src, r.Off, n, r.Buf); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !sq.enter(&d.closing) {
		return nil, ErrClosed
	}
	c, err := d.alloc(ctx, sq, p)
	if err != nil {
		sq.exit(&d.closing)
		return nil, err
	}
	c.op, c.fua, c.src, c.off, c.n, c.buf, c.user = r.Op, r.FUA, r.Src, r.Off, n, r.Buf, r
	return c, nil
}

// alloc takes a tag on sq's hardware queue and returns its command. A
// plugged submitter that has to sleep first sends its plug on: the plug's
// requests hold tags, possibly the ones it is waiting for (the kernel
// flushes the plug when the task schedules, for the same reason).
func (d *Dispatcher) alloc(ctx context.Context, sq *swQueue, p *Plug) (*cmd, error) {
	h := sq.hw
	tag, ok := h.tags.tryGet(&sq.hint)
	if !ok {
		if p != nil {
			p.flush()
		}
		var err error
		if tag, err = h.tags.get(ctx, &sq.hint); err != nil {
			return nil, err
		}
	}
	c := &h.cmds[tag]
	c.sq = sq
	c.start = -1
	if tag&latencySampleMask == 0 {
		c.start = d.now()
	}
	return c, nil
}

// complete finishes one request issued by a worker.
func (d *Dispatcher) complete(c *cmd, err error) {
	sq := c.sq
	d.account(c, err)
	if c.wait {
		c.done <- err // the waiter releases the tag
		return
	}
	r := c.user
	// Free the tag before calling End, so that an End that submits the
	// next request finds a tag (blk_mq_end_request frees the request
	// right after the bio completes, too).
	d.release(c)
	if r != nil && r.End != nil {
		r.End(r, err)
	}
	sq.exit(&d.closing)
}

// latencySampleMask picks the requests whose latency is measured: those
// whose tag is a multiple of 8. Reading the clock twice cost 50 ns of the
// 85 ns the dispatcher adds to a request (measured with a backend that
// does nothing), so only one request in eight pays it. Tags are handed out
// walking forward through the set, so every submitter is sampled; with
// fewer than 8 tags, tag 0 is the sample.
const latencySampleMask = 7

// account records a finished request in its software queue's statistics.
func (d *Dispatcher) account(c *cmd, err error) {
	d.record(c.sq, c.op, c.n, false, c.start, err)
}

// record adds a finished request to sq's statistics; start is its tag
// allocation time, or negative when it is not sampled.
func (d *Dispatcher) record(sq *swQueue, op Op, n int64, direct bool, start int64, err error) {
	latency := int64(-1)
	if start >= 0 {
		latency = d.now() - start
	}
	sq.stats.complete(op, n, direct, err != nil, latency)
}

// release frees c's tag.
func (d *Dispatcher) release(c *cmd) {
	h := c.sq.hw
	c.reset()
	h.tags.put(c.tag)
}

// swqForSync picks the software queue of a synchronous call: by the
// buffer's address for data, by offset for discards, round-robin for
// flushes.
func (d *Dispatcher) swqForSync(op Op, buf []byte, off int64) *swQueue {
	switch {
	case len(buf) > 0:
		return d.swqFor(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
	case op == OpFlush:
		return d.sw[d.rr.Add(1)%uint64(len(d.sw))]
	default:
		return d.swqFor(uintptr(off))
	}
}

// check validates a request before it takes a tag, so that bad input
// fails fast with a typed error and the backend sees only good requests.
func (d *Dispatcher) check(op Op, src, off, n int64, buf []byte) error {
	switch op {
	case OpFlush:
		return nil
	case OpRead, OpWrite, OpDiscard, OpWriteZeroes, OpCopy:
	default:
		return &InvalidOpError{Op: op}
	}
	size := d.size.Load()
	if n <= 0 || off < 0 || off > size || n > size-off {
		return &RangeError{Op: op, Off: off, Len: n, Size: size}
	}
	if op == OpCopy {
		if src < 0 || src > size || n > size-src {
			return &RangeError{Op: op, Off: src, Len: n, Size: size}
		}
		if src < off+n && off < src+n {
			return &OverlapError{Src: src, Dst: off, Len: n}
		}
		if a := d.offAlign; a > 1 && (src%a != 0 || off%a != 0 || n%a != 0) {
			// The copy may fall back to reads and writes, held to
			// O_DIRECT's rules.
			return &AlignmentError{Op: op, Off: off, Len: n, OffAlign: int(a)}
		}
	}
	if op.hasData() && (d.offAlign > 1 || d.memAlign > 1) {
		addr := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
		if off%d.offAlign != 0 || n%d.offAlign != 0 || int64(addr)%d.memAlign != 0 {
			return &AlignmentError{Op: op, Off: off, Len: n, Addr: addr, OffAlign: int(d.offAlign), MemAlign: int(d.memAlign)}
		}
	}
	return nil
}
