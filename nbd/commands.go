package nbd

import (
	"context"
	"errors"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// Sparse READ tuning. Below sparseReadMin the BlockStatus call costs more
// than sending the zeros; holes shorter than minHoleChunk are sent as data
// so tiny holes do not fragment a reply; maxReadSegments bounds the chunks
// of one reply (the rest is sent as data).
const (
	sparseReadMin   = 64 << 10
	minHoleChunk    = 4096
	maxReadSegments = 64
)

// maxCompactExtent is the largest 512-aligned extent length a compact
// BLOCK_STATUS descriptor (u32) can carry.
const maxCompactExtent = 0xFFFFFE00

// execute runs a validated request against the backend and builds its
// reply in r.out. It runs on a worker.
func (t *transmission) execute(ctx context.Context, r *request) {
	if r.errno != 0 {
		t.replyStatus(r)
		return
	}
	off, n := int64(r.Offset), int64(r.Length)
	var err error
	switch r.Type {
	case wire.CmdRead:
		t.doRead(ctx, r)
		return
	case wire.CmdBlockStatus:
		t.doBlockStatus(ctx, r)
		return
	case wire.CmdWrite:
		if r.buf != nil { // nil for an empty write
			err = t.be.WriteAt(ctx, *r.buf, off, t.fuaFlag(r))
			err = t.emulatedFUA(ctx, r, err)
		}
	case wire.CmdFlush:
		err = t.be.Flush(ctx)
	case wire.CmdTrim:
		if n > 0 {
			err = t.be.Trim(ctx, off, n, t.fuaFlag(r))
			err = t.emulatedFUA(ctx, r, err)
		}
	case wire.CmdWriteZeroes:
		if n > 0 {
			f := t.fuaFlag(r)
			if r.Flags&wire.CmdFlagNoHole != 0 {
				f |= FlagNoHole
			}
			if r.Flags&wire.CmdFlagFastZero != 0 {
				f |= FlagFastZero
			}
			err = t.be.Zero(ctx, off, n, f)
			err = t.emulatedFUA(ctx, r, err)
		}
	case wire.CmdCache:
		if n > 0 && t.caps.Cache {
			err = t.be.Cache(ctx, off, n)
		}
	}
	if err != nil {
		t.backendErr(r, err)
	}
	t.replyStatus(r)
}

// fuaFlag passes FUA to a backend that implements it.
func (t *transmission) fuaFlag(r *request) Flags {
	if r.Flags&wire.CmdFlagFUA != 0 && !t.emulateFUA {
		return FlagFUA
	}
	return 0
}

// emulatedFUA follows a successful write-type operation with a Flush when
// the client asked for FUA and the backend has no native FUA.
func (t *transmission) emulatedFUA(ctx context.Context, r *request, err error) error {
	if err == nil && r.Flags&wire.CmdFlagFUA != 0 && t.emulateFUA {
		return t.be.Flush(ctx)
	}
	return err
}

// backendErr records a backend failure as the request's NBD error.
func (t *transmission) backendErr(r *request, err error) {
	r.errno = errnoOf(err, r.Flags&wire.CmdFlagFastZero != 0)
	r.msg = err.Error()
	// FAST_ZERO refusals are the protocol working as designed.
	if r.errno != wire.ENOTSUP {
		t.c.logLimited("nbd: backend error", "export", t.exp.Name, "cmd", wire.CommandName(r.Type),
			"offset", r.Offset, "length", r.Length, "errno", errnoName(r.errno), "err", err)
	}
}

// doRead answers READ. The data is read in full before any header is
// built, so an error never follows a header that promised data.
func (t *transmission) doRead(ctx context.Context, r *request) {
	if r.Length == 0 {
		t.replyStatus(r)
		return
	}
	buf, off := *r.buf, int64(r.Offset)
	if !t.chunked {
		if err := t.be.ReadAt(ctx, buf, off); err != nil {
			t.backendErr(r, err)
			t.replyStatus(r)
			return
		}
		r.hdr = wire.AppendSimpleReply(r.hdr, 0, r.Cookie)
		r.out = append(r.out, r.hdr, buf)
		return
	}
	t.readSegments(ctx, r)
	for _, s := range r.segs {
		if s.hole {
			continue
		}
		if err := t.be.ReadAt(ctx, buf[s.off:s.off+s.length], off+s.off); err != nil {
			t.backendErr(r, err)
			t.replyStatus(r)
			return
		}
	}
	t.replyReadChunks(r)
}

// readSegments splits a structured READ into data and hole pieces from the
// backend's allocation map. DF forbids holes (one data chunk).
func (t *transmission) readSegments(ctx context.Context, r *request) {
	n := int64(r.Length)
	r.segs = r.segs[:0]
	add := func(length int64, hole bool) {
		if k := len(r.segs); k > 0 && r.segs[k-1].hole == hole {
			r.segs[k-1].length += length
			return
		}
		var at int64
		if k := len(r.segs); k > 0 {
			at = r.segs[k-1].off + r.segs[k-1].length
		}
		r.segs = append(r.segs, segment{off: at, length: length, hole: hole})
	}
	var pos int64
	if r.Flags&wire.CmdFlagDF == 0 && t.caps.BlockStatus && n >= sparseReadMin {
		ext, err := t.be.BlockStatus(ctx, int64(r.Offset), n, maxReadSegments, r.ext[:0])
		r.ext = ext
		if err != nil {
			// Holes are an optimisation; the plain read below still
			// answers correctly.
			t.c.logLimited("nbd: block status for read failed", "export", t.exp.Name, "err", err)
			ext = nil
		}
		for _, e := range ext {
			if e.Length <= 0 || pos >= n {
				break
			}
			l := min(e.Length, n-pos)
			add(l, e.Flags&ExtentZero != 0 && l >= minHoleChunk)
			pos += l
		}
	}
	if pos < n {
		add(n-pos, false)
	}
}

// doBlockStatus answers BLOCK_STATUS with one status chunk per selected
// meta context, in id order. All are gathered before any is sent, so a
// context that fails makes the whole reply an error.
func (t *transmission) doBlockStatus(ctx context.Context, r *request) {
	off, n := int64(r.Offset), int64(r.Length)
	reqOne := r.Flags&wire.CmdFlagReqOne != 0
	ext := r.ext[:0]
	counts := make([]int, len(t.contexts))
	for i, c := range t.contexts {
		start := len(ext)
		var err error
		ext, err = t.contextStatus(ctx, c, off, n, r.maxExt, ext)
		if err != nil {
			r.ext = ext
			t.backendErr(r, err)
			t.replyStatus(r)
			return
		}
		got := t.clampExtents(ext[start:], off, n, r.maxExt, reqOne)
		ext = ext[:start+len(got)]
		if len(got) == 0 {
			r.ext = ext
			r.setErr(wire.EIO, "backend returned no extents")
			t.replyStatus(r)
			return
		}
		counts[i] = len(got)
	}
	r.ext = ext
	t.replyBlockStatus(r, ext, counts)
}

// contextStatus appends the extents of one meta context from off.
func (t *transmission) contextStatus(ctx context.Context, c metaContext, off, n int64, maxExt int, ext []Extent) ([]Extent, error) {
	if c.bitmap != "" {
		db, ok := t.be.(DirtyBitmaps)
		if !ok {
			return ext, errors.New("export offers no dirty bitmaps")
		}
		return db.DirtyStatus(ctx, c.bitmap, off, n, maxExt, ext)
	}
	if !t.caps.BlockStatus {
		return append(ext, Extent{Length: n}), nil
	}
	return t.be.BlockStatus(ctx, off, n, maxExt, ext)
}

// clampExtents makes the backend's extents obey the protocol whatever the
// backend did: positive lengths, merged equal neighbours, the first n-1
// summing below the request, nothing past the export's end, one extent no
// longer than the request for REQ_ONE, u32 lengths in compact mode, and at
// most maxExt. It works in place.
func (t *transmission) clampExtents(ext []Extent, off, n int64, maxExt int, reqOne bool) []Extent {
	out := ext[:0]
	var sum int64
	// Not past the end the client knows of (the handshake's size, or a
	// request beyond it): a client that never heard of a growth must not
	// see extents past its export's end.
	end := min(max(t.told, uint64(off+n)), t.size())
	room := int64(end) - off
	for _, e := range ext {
		if e.Length <= 0 || sum >= n || sum >= room || len(out) == maxExt {
			break
		}
		l := min(e.Length, room-sum)
		if reqOne {
			l = min(l, n)
		}
		f := e.Flags & (ExtentHole | ExtentZero) // ExtentDirty is bit 0 too
		if k := len(out); k > 0 && out[k-1].Flags == f {
			out[k-1].Length += l
		} else {
			out = append(out, Extent{Length: l, Flags: f})
		}
		sum += l
		if reqOne {
			break
		}
	}
	if !t.extended {
		for i := range out {
			if out[i].Length > maxCompactExtent {
				out[i].Length = maxCompactExtent
				out = out[:i+1] // later extents would no longer be contiguous
				break
			}
		}
	}
	return out
}
