package blk

import (
	"fmt"
	"io"
)

// dispatch issues one queued unit and completes its requests; it runs on a
// worker. iovs is the worker's scratch space for merged calls.
func (d *Dispatcher) dispatch(u *cmd, iovs *[][]byte) {
	n := u.ucount
	u.sq.hw.backlog.Add(-int64(n))
	u.sq.stats.units.Add(1)
	err := d.issue(u, iovs)
	if u.merged != nil {
		clear((*iovs)[:u.ucount]) // do not keep callers' buffers alive
	}
	for c := u; c != nil; {
		next := c.merged // complete may recycle c
		d.complete(c, ioError(c.op, c.off, c.n, n, err))
		c = next
	}
}

// ioError names the request in a backend error.
func ioError(op Op, off, n int64, merged int, err error) error {
	if err == nil {
		return nil
	}
	return &IOError{Op: op, Off: off, Len: n, Merged: merged, Err: err}
}

// issue makes the backend call for a unit. Merged reads and writes become
// one preadv/pwritev when the backend is vectored.
func (d *Dispatcher) issue(u *cmd, iovs *[][]byte) error {
	if u.merged == nil || !u.op.hasData() {
		// One buffer, or none: merged discards and write-zeroes are one
		// range.
		return d.issueOne(u.op, u.buf, u.src, u.off, u.ulen, u.ufua, &u.iov)
	}
	if d.vec == nil {
		for c := u; c != nil; c = c.merged {
			if err := d.issueOne(c.op, c.buf, 0, c.off, c.n, false, nil); err != nil {
				return err
			}
		}
		if u.ufua {
			return d.be.Flush()
		}
		return nil
	}
	bufs := gather(u, iovs)
	var n int
	var err error
	if u.op == OpRead {
		n, err = d.vec.ReadvAt(bufs, u.off)
	} else {
		n, err = d.vec.WritevAt(bufs, u.off, u.ufua)
	}
	return transferred(n, u.ulen, err)
}

// issueOne makes the backend call for a single request. A FUA write goes
// to a vectored backend with its data (pwritev2 with RWF_DSYNC, which syncs
// only this range), through iov, the tag's one-entry scratch vector;
// otherwise it is followed by a Flush.
func (d *Dispatcher) issueOne(op Op, buf []byte, src, off, n int64, fua bool, iov *[1][]byte) error {
	switch op {
	case OpRead:
		return readFull(d.be, buf, off)
	case OpWrite:
		if fua && d.vec != nil {
			iov[0] = buf
			m, err := d.vec.WritevAt(iov[:], off, true)
			iov[0] = nil // do not keep the caller's buffer alive
			return transferred(m, n, err)
		}
		m, err := d.be.WriteAt(buf, off)
		if err := transferred(m, n, err); err != nil || !fua {
			return err
		}
		return d.be.Flush()
	case OpDiscard:
		return d.be.Discard(off, n)
	case OpWriteZeroes:
		return d.be.WriteZeroes(off, n)
	case OpFlush:
		return d.be.Flush()
	case OpCopy:
		return d.copyRange(src, off, n)
	}
	// check rejects unknown ops before a tag is taken.
	panic(fmt.Sprintf("blk: issue of %s", op))
}

// gather collects the unit's buffers into the worker's scratch slice.
func gather(u *cmd, iovs *[][]byte) [][]byte {
	bufs := (*iovs)[:0]
	for c := u; c != nil; c = c.merged {
		bufs = append(bufs, c.buf)
	}
	*iovs = bufs[:0]
	return bufs
}

// readFull reads all of p; ReaderAt may return io.EOF with a full buffer.
func readFull(b Backend, p []byte, off int64) error {
	n, err := b.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	return transferred(n, int64(len(p)), err)
}

// transferred turns a short transfer into an error.
func transferred(n int, want int64, err error) error {
	if int64(n) == want {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("transferred %d of %d bytes: %w", n, want, err)
}
