package thinpool

import (
	"context"
	"errors"

	"github.com/thind-storage/thind/thinmeta"
)

// DiffExtent is a byte range where a device differs from a base: its data
// changed (it maps other blocks than the base, or maps blocks the base
// does not), or Unmapped, where the base maps blocks and the device none,
// so the range reads as zeroes now. A restore that skipped those would
// keep the base's stale data there.
type DiffExtent struct {
	Off, Len uint64
	Unmapped bool
}

// diffChunk is how many virtual blocks one metadata read lock covers:
// a diff of a large, much changed device lets writes in between chunks.
const diffChunk = 1 << 16

// Diff calls fn for each range of [off, end) where device target differs
// from device base, in order, adjacent ranges of one kind merged. Ranges
// are whole blocks but for the first and the last, clipped to off and
// end. It compares the devices' mapping trees, skipping the subtrees they
// share, so it costs what changed, not the size.
//
// Each chunk of diffChunk blocks is compared under the metadata's read
// lock, and fn runs between chunks, outside it: a live device may change
// meanwhile, and each range is as it was when its chunk was compared.
func (p *Pool) Diff(ctx context.Context, base, target, off, end uint64, fn func(DiffExtent) error) error {
	return p.runs(ctx, base, target, true, off, end, fn)
}

// Allocated calls fn for each range of [off, end) that device dev maps,
// as Diff against a device that maps nothing would: in order, merged,
// clipped, none Unmapped. It reads every mapping of the range.
func (p *Pool) Allocated(ctx context.Context, dev, off, end uint64, fn func(DiffExtent) error) error {
	// A device compared with itself is the same everywhere it maps.
	return p.runs(ctx, dev, dev, false, off, end, fn)
}

// runs does Diff and Allocated: the comparison of base and target by
// chunks, with the runs both map alike left out if skipSame.
func (p *Pool) runs(ctx context.Context, base, target uint64, skipSame bool, off, end uint64, fn func(DiffExtent) error) error {
	if off >= end {
		return nil
	}
	bs := p.bs
	var pend DiffExtent // the range not handed to fn yet
	var batch []DiffExtent
	emit := func(e DiffExtent) {
		if pend.Len > 0 && pend.Off+pend.Len == e.Off && pend.Unmapped == e.Unmapped {
			pend.Len += e.Len
			return
		}
		if pend.Len > 0 {
			batch = append(batch, pend)
		}
		pend = e
	}
	for v, last := off/bs, (end-1)/bs; v <= last; v += diffChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		opts := thinmeta.DeltaOptions{SkipSame: skipSame, Begin: v, End: min(v+diffChunk, last+1)}
		_, err := p.md.Delta(base, target, opts, func(r thinmeta.DeltaRun) error {
			s, e := max(r.Begin*bs, off), min((r.Begin+r.Len)*bs, end)
			emit(DiffExtent{Off: s, Len: e - s, Unmapped: r.Kind == thinmeta.DeltaLeftOnly})
			return nil
		})
		if err != nil {
			if errors.Is(err, thinmeta.ErrFailed) {
				return ErrFailed
			}
			return err
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
		}
		batch = batch[:0]
	}
	if pend.Len > 0 {
		return fn(pend)
	}
	return nil
}
