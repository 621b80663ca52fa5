package thinpool

import (
	"context"
	"errors"
	"sync"

	"github.com/thind-storage/thind/spacemap"
)

// payload is what a block write puts down: bytes, or zeroes.
type payload struct {
	buf  []byte // nil for zeroes
	size uint64
}

func bytesPayload(b []byte) payload { return payload{buf: b, size: uint64(len(b))} }
func zeroPayload(n uint64) payload  { return payload{size: n} }

// WriteAt writes buf at off. With fua, the write (and any mapping it made)
// is durable when WriteAt returns.
func (t *Thin) WriteAt(ctx context.Context, buf []byte, off uint64, fua bool) error {
	if err := t.checkRange(off, uint64(len(buf))); err != nil {
		return err
	}
	if Mode(t.p.mode.Load()) == ModeFail {
		return ErrFailed
	}
	// A write over several blocks sends the in-place pieces through a
	// batch, merged where they meet on the data device; one block is
	// written directly, the fastest way for a lone request.
	var b *ioBatch
	if bs := t.p.bs; off/bs != (off+uint64(len(buf))-1)/bs {
		b = t.p.getBatch()
	}
	t.writes.RLock()
	err := t.forBlocks(off, uint64(len(buf)), func(v, o, n, pos uint64) error {
		return t.writeBlock(ctx, v, o, bytesPayload(buf[pos:pos+n]), fua, b)
	})
	if b != nil {
		// Wait even after an error: the pieces hold the caller's buffer.
		if werr := b.wait(); err == nil {
			err = werr
		}
		t.p.putBatch(b)
	}
	t.writes.RUnlock()
	if err != nil {
		return err
	}
	if fua && t.changed.Load() {
		return t.p.Commit(ctx)
	}
	return nil
}

// forBlocks cuts [off, off+n) at block boundaries: fn gets the virtual
// block, the offset in it, the length, and the position in the range.
func (t *Thin) forBlocks(off, n uint64, fn func(v, o, n, pos uint64) error) error {
	bs := t.p.bs
	for pos := uint64(0); pos < n; {
		cur := off + pos
		v, o := cur/bs, cur%bs
		chunk := min(bs-o, n-pos)
		if err := fn(v, o, chunk, pos); err != nil {
			return err
		}
		pos += chunk
	}
	return nil
}

// writeBlock writes src at offset o of virtual block v (process_bio for a
// write): in place if the block is mapped and not shared, by breaking
// sharing if it is shared, by provisioning if it is unmapped. With a
// batch b, an in-place write is only submitted: it completes, and leaves
// the in-flight set, when the caller waits for b.
func (t *Thin) writeBlock(ctx context.Context, v, o uint64, src payload, fua bool, b *ioBatch) error {
	p := t.p
	// The common case, a block of its own, needs no cell: the write joins
	// the in-flight set before looking up, so a commit or abort that lets
	// the block go waits for the write before anything can reuse it.
	e := t.allIO.Inc()
	l, mapped, err := t.find(v)
	if err == nil && mapped && !l.Shared {
		if h := p.hooks.Load(); h != nil && h.writeMapped != nil {
			h.writeMapped()
		}
		if b != nil && src.buf != nil {
			if err := b.write(ctx, src.buf, l.DataBlock*p.bs+o, fua); err != nil {
				t.endIO(e)
				return err
			}
			b.holdIO(t, e)
			return nil
		}
		err = t.putData(ctx, l.DataBlock*p.bs+o, src, fua)
		t.endIO(e)
		return err
	}
	t.endIO(e)
	if err != nil {
		return err
	}
	if b != nil {
		// A change of mapping may wait for a commit, and a commit waits
		// for the in-flight set: let the batch's writes complete and
		// leave it first.
		if err := b.wait(); err != nil {
			return err
		}
	}
	// Changing the mapping: hold the block's cell, and look again.
	c, err := p.lockCell(ctx, virtualKey(t.id, v))
	if err != nil {
		return err
	}
	defer p.unlockCell(c)
	if l, mapped, err = t.find(v); err != nil {
		return err
	}
	if mapped && !l.Shared {
		e := t.allIO.Inc()
		err := t.putData(ctx, l.DataBlock*p.bs+o, src, fua)
		t.endIO(e)
		return err
	}
	if err := p.canChangeMetadata(); err != nil {
		return err
	}
	if mapped {
		return t.remapToNew(ctx, v, o, src, &l.DataBlock)
	}
	return t.remapToNew(ctx, v, o, src, nil)
}

// putData writes a payload to the data device.
func (t *Thin) putData(ctx context.Context, off uint64, src payload, fua bool) error {
	d := t.p.data
	if src.buf == nil {
		if err := d.WriteZeroes(ctx, int64(off), int64(src.size)); err != nil {
			return err
		}
		if fua {
			return d.Flush(ctx)
		}
		return nil
	}
	return d.Write(ctx, src.buf, int64(off), fua)
}

// allocate takes a data block under the transaction lock (which the
// caller holds) and returns it, and whether it is a clean hole; on a full
// data device it drops the lock to make room or wait, and takes it again.
func (t *Thin) allocate(ctx context.Context) (block uint64, clean bool, err error) {
	p := t.p
	for {
		b, err := p.md.AllocDataBlock()
		if err == nil {
			p.mdDirty.Store(true)
			if Mode(p.mode.Load()) == ModeOutOfDataSpace {
				p.setMode(ModeWrite, "data space available")
			}
			p.checkLowWater()
			return b, p.clean.take(b), nil
		}
		if !errors.Is(err, spacemap.ErrNoSpace) {
			return 0, false, p.metadataFailed("allocate data block", err)
		}
		p.txn.RUnlock()
		err = p.waitForSpace(ctx)
		p.txn.RLock()
		if err != nil {
			return 0, false, err
		}
	}
}

// remapToNew gives virtual block v a new data block holding src at
// offset o. The rest of the block is copied from *shared when v was
// mapped to a block shared with a snapshot (breaking the sharing), or
// zeroed when v was unmapped (unless block zeroing is off, or the block
// is a hole). Reads still on a shared block are safe: if the remap frees
// it, the commit waits for them before anything reuses it.
func (t *Thin) remapToNew(ctx context.Context, v, o uint64, src payload, shared *uint64) error {
	p := t.p
	p.txn.RLock()
	defer p.txn.RUnlock()
	b, clean, err := t.allocate(ctx)
	if err != nil {
		return err
	}
	if shared != nil || !clean {
		p.dataFirst.Store(true)
	}
	if err := t.fillNewBlock(ctx, b, o, src, shared, clean); err != nil {
		// The block never got mapped: give it back.
		if derr := p.md.DecDataBlock(b); derr != nil {
			return p.metadataFailed("release data block", derr)
		}
		return err
	}
	if err := p.md.Insert(t.id, v, b); err != nil {
		return p.metadataFailed("map new data block", err)
	}
	t.changed.Store(true)
	if shared != nil {
		t.st.sharingBroken.Add(1)
	} else {
		t.st.provisioned.Add(1)
	}
	return nil
}

// smallBlock is the largest block filled in memory and written once;
// bigger ones are filled in place on the data device.
const smallBlock = 1 << 20

var blockBufs = sync.Pool{New: func() any { b := make([]byte, smallBlock); return &b }}

// fillNewBlock writes a new data block b: src at offset o, and around it
// either a copy of block *from (breaking sharing) or zeroes (provisioning,
// unless block zeroing is off or the block is a hole, which reads zeros
// already). A write covering the whole block needs neither.
func (t *Thin) fillNewBlock(ctx context.Context, b, o uint64, src payload, from *uint64, hole bool) error {
	p := t.p
	bs := p.bs
	base := b * bs
	if src.size == bs {
		return t.putData(ctx, base, src, false)
	}
	if from == nil && (p.cfg.SkipBlockZeroing || hole) {
		return t.putData(ctx, base+o, src, false)
	}
	if from != nil && bs > smallBlock {
		// Copy the old block where it lies (on a reflink file system a
		// clone: no bytes move, and the file system copies only what
		// the write then overwrites), then write over it. Smaller
		// blocks are patched in memory and written once: cloning
		// 64 KiB on XFS took 3.7 times as long as that, a 2 MiB
		// clone a hundredth of the copy (BenchmarkWriteAfterSnapshotOn).
		if err := p.data.Copy(ctx, int64(*from*bs), int64(base), int64(bs)); err != nil {
			return err
		}
		return t.putData(ctx, base+o, src, false)
	}
	if bs <= smallBlock {
		bp := blockBufs.Get().(*[]byte)
		defer blockBufs.Put(bp)
		blk := (*bp)[:bs]
		if from != nil {
			if err := p.data.Read(ctx, blk, int64(*from*bs)); err != nil {
				return err
			}
		} else {
			clear(blk)
		}
		if src.buf != nil {
			copy(blk[o:], src.buf)
		} else {
			clear(blk[o : o+src.size])
		}
		return p.data.Write(ctx, blk, int64(base), false)
	}
	// Big blocks: zero the whole block, then write.
	if err := p.data.WriteZeroes(ctx, int64(base), int64(bs)); err != nil {
		return err
	}
	return t.putData(ctx, base+o, src, false)
}

// Flush makes every write completed before it durable, on every thin of
// the pool.
func (t *Thin) Flush(ctx context.Context) error {
	if Mode(t.p.mode.Load()) == ModeFail {
		return ErrFailed
	}
	return t.p.Commit(ctx)
}
