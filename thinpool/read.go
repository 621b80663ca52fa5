package thinpool

import (
	"context"

	"github.com/thind-storage/thind/bioprison"
)

// readRun is a piece of a read mapped to the data device.
type readRun struct {
	dataOff  uint64
	from, to int // in the caller's buffer
	entry    bioprison.DeferredEntry
}

// maxReadBatch bounds the blocks looked up before their data is read.
const maxReadBatch = 32

// ReadAt reads len(buf) bytes at off. Unmapped blocks read as zeroes with
// no data I/O; mapped ones are read from the data device, contiguous data
// blocks in one request.
func (t *Thin) ReadAt(ctx context.Context, buf []byte, off uint64) error {
	if err := t.checkRange(off, uint64(len(buf))); err != nil {
		return err
	}
	p := t.p
	if Mode(p.mode.Load()) == ModeFail {
		return ErrFailed
	}
	bs := p.bs
	var runs [maxReadBatch]readRun
	pos := 0
	for pos < len(buf) {
		n := 0
		for n < maxReadBatch && pos < len(buf) {
			cur := off + uint64(pos)
			v, o := cur/bs, cur%bs
			chunk := int(min(bs-o, uint64(len(buf)-pos)))
			c, err := p.lock(ctx, p.virtualKey(t.id, v))
			if err != nil {
				t.finishRuns(runs[:n])
				return err
			}
			l, mapped, err := t.find(v)
			if err != nil {
				p.unlock(c)
				t.finishRuns(runs[:n])
				return err
			}
			if !mapped {
				p.unlock(c)
				clear(buf[pos : pos+chunk])
				pos += chunk
				continue
			}
			// Join the in-flight set while the cell still keeps
			// unmappers out: they wait for us from here on.
			e := t.allIO.Inc()
			p.unlock(c)
			runs[n] = readRun{dataOff: l.DataBlock*bs + o, from: pos, to: pos + chunk, entry: e}
			n++
			pos += chunk
		}
		err := t.readRuns(ctx, buf, runs[:n])
		t.finishRuns(runs[:n])
		if err != nil {
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

func (t *Thin) finishRuns(runs []readRun) {
	for _, r := range runs {
		t.endIO(r.entry)
	}
}
