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
		d.complete(c, d.wrap(c, n, err))
		c = next
	}
}

// wrap names the request in a backend error.
func (d *Dispatcher) wrap(c *cmd, merged int, err error) error {
	if err == nil {
		return nil
	}
	return &IOError{Op: c.op, Off: c.off, Len: c.n, Merged: merged, Err: err}
}

// issue makes the backend call for a unit. Merged reads and writes become
// one preadv/pwritev when the backend is vectored.
func (d *Dispatcher) issue(u *cmd, iovs *[][]byte) error {
	switch u.op {
	case OpRead:
		if u.merged == nil {
			return readFull(d.be, u.buf, u.off)
		}
		if d.vec != nil {
			bufs := gather(u, iovs)
			n, err := d.vec.ReadvAt(bufs, u.off)
			return transferred(n, u.ulen, err)
		}
		for c := u; c != nil; c = c.merged {
			if err := readFull(d.be, c.buf, c.off); err != nil {
				return err
			}
		}
		return nil
	case OpWrite:
		return d.write(u, iovs)
	case OpDiscard:
		return d.be.Discard(u.off, u.ulen)
	case OpWriteZeroes:
		return d.be.WriteZeroes(u.off, u.ulen)
	case OpFlush:
		return d.be.Flush()
	}
	// check rejects unknown ops before a tag is taken.
	panic(fmt.Sprintf("blk: issue of %s", u.op))
}

// write issues a write unit. FUA goes to the backend with the data when it
// is vectored (pwritev2 with RWF_DSYNC, which syncs only this range);
// otherwise the write is followed by a Flush.
func (d *Dispatcher) write(u *cmd, iovs *[][]byte) error {
	if d.vec != nil && (u.merged != nil || u.ufua) {
		var bufs [][]byte
		if u.merged == nil {
			u.iov[0] = u.buf
			bufs = u.iov[:]
		} else {
			bufs = gather(u, iovs)
		}
		n, err := d.vec.WritevAt(bufs, u.off, u.ufua)
		return transferred(n, u.ulen, err)
	}
	for c := u; c != nil; c = c.merged {
		n, err := d.be.WriteAt(c.buf, c.off)
		if err := transferred(n, c.n, err); err != nil {
			return err
		}
	}
	if u.ufua {
		return d.be.Flush()
	}
	return nil
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
