package thinpool

import (
	"context"
)

// readRun is a piece of a read mapped to the data device.
type readRun struct {
	dataOff  uint64
	from, to int // in the caller's buffer
}

// maxReadBatch bounds the blocks looked up before their data is read.
const maxReadBatch = 32

// ReadAt reads len(buf) bytes at off. Unmapped blocks read as zeroes with
// no data I/O; mapped ones are read from the data device, contiguous data
// blocks in one request.
//
// Reads take no prison cell (the kernel's do): the read joins the thin's
// in-flight set before its first lookup, and a commit, before it lets
// anything punch or reuse the blocks its transaction freed, waits for the
// I/O in flight. A read racing with an unmap or a remap of its block may
// still read the old block, which nothing can have changed yet: the read
// is simply ordered before the change.
func (t *Thin) ReadAt(ctx context.Context, buf []byte, off uint64) error {
	if err := t.checkRange(off, uint64(len(buf))); err != nil {
		return err
	}
	p := t.p
	if Mode(p.mode.Load()) == ModeFail {
		return ErrFailed
	}
	e := t.allIO.Inc()
	defer t.endIO(e)
	bs := p.bs
	var runs [maxReadBatch]readRun
	pos := 0
	for pos < len(buf) {
		n := 0
		for n < maxReadBatch && pos < len(buf) {
			cur := off + uint64(pos)
			v, o := cur/bs, cur%bs
			chunk := int(min(bs-o, uint64(len(buf)-pos)))
			l, mapped, err := t.find(v)
			if err != nil {
				return err
			}
			if !mapped {
				clear(buf[pos : pos+chunk])
			} else {
				runs[n] = readRun{dataOff: l.DataBlock*bs + o, from: pos, to: pos + chunk}
				n++
			}
			pos += chunk
		}
		if err := t.readRuns(ctx, buf, runs[:n]); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// readRuns reads runs, merging neighbours that are contiguous both in the
// buffer and on the data device.
func (t *Thin) readRuns(ctx context.Context, buf []byte, runs []readRun) error {
	for i := 0; i < len(runs); {
		j := i + 1
		for j < len(runs) && runs[j].from == runs[j-1].to &&
			runs[j].dataOff == runs[j-1].dataOff+uint64(runs[j-1].to-runs[j-1].from) {
			j++
		}
		if err := t.p.data.Read(ctx, buf[runs[i].from:runs[j-1].to], int64(runs[i].dataOff)); err != nil {
			return err
		}
		i = j
	}
	return nil
}
