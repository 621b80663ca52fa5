package nbd

import (
	"encoding/binary"
	"slices"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// Reply building. Workers build each reply completely into the request:
// headers and small payloads in r.hdr, data referenced from r.buf, the
// pieces listed in r.out for the writer's writev. r.hdr is grown before
// slicing so that the slices stay valid.

// chunkHeader appends a structured or extended chunk header for r.
func (t *transmission) chunkHeader(r *request, flags, typ uint16, length int) {
	r.hdr = wire.AppendChunk(r.hdr, wire.Chunk{
		Flags:  flags,
		Type:   typ,
		Cookie: r.Cookie,
		Offset: r.Offset,
		Length: uint64(length),
	}, t.extended)
}

// replyStatus builds a reply without data: the request's status, which
// is success or r.errno with r.msg. Without chunked replies it is a simple
// reply. With structured replies, success is a simple reply too (allowed
// for every command but READ) and an error is an ERROR chunk, which
// carries the message to the user. With extended headers success is a
// NONE chunk. A READ always gets a chunk once chunks are negotiated.
func (t *transmission) replyStatus(r *request) {
	msg := clampString(r.msg)
	r.hdr = slices.Grow(r.hdr[:0], wire.ExtendedReplySize+6+len(msg))
	switch {
	case !t.chunked:
		r.hdr = wire.AppendSimpleReply(r.hdr, r.errno, r.Cookie)
	case r.errno != 0:
		t.chunkHeader(r, wire.ReplyFlagDone, wire.ReplyTypeError, 6+len(msg))
		r.hdr = binary.BigEndian.AppendUint32(r.hdr, r.errno)
		r.hdr = binary.BigEndian.AppendUint16(r.hdr, uint16(len(msg)))
		r.hdr = append(r.hdr, msg...)
	case t.extended || r.Type == wire.CmdRead:
		t.chunkHeader(r, wire.ReplyFlagDone, wire.ReplyTypeNone, 0)
	default:
		r.hdr = wire.AppendSimpleReply(r.hdr, 0, r.Cookie)
	}
	r.out = append(r.out[:0], r.hdr)
}

// replyReadChunks builds a successful structured READ: one OFFSET_DATA or
// OFFSET_HOLE chunk per segment, in order, DONE on the last.
func (t *transmission) replyReadChunks(r *request) {
	const perChunk = wire.ExtendedReplySize + 8 + 4
	r.hdr = slices.Grow(r.hdr[:0], len(r.segs)*perChunk)
	r.out = r.out[:0]
	buf := *r.buf
	for i, s := range r.segs {
		var flags uint16
		if i == len(r.segs)-1 {
			flags = wire.ReplyFlagDone
		}
		start := len(r.hdr)
		abs := r.Offset + uint64(s.off)
		if s.hole {
			t.chunkHeader(r, flags, wire.ReplyTypeOffsetHole, 12)
			r.hdr = binary.BigEndian.AppendUint64(r.hdr, abs)
			r.hdr = binary.BigEndian.AppendUint32(r.hdr, uint32(s.length))
			r.out = append(r.out, r.hdr[start:])
			continue
		}
		t.chunkHeader(r, flags, wire.ReplyTypeOffsetData, 8+int(s.length))
		r.hdr = binary.BigEndian.AppendUint64(r.hdr, abs)
		r.out = append(r.out, r.hdr[start:], buf[s.off:s.off+s.length])
	}
}

// replyBlockStatus builds the status chunks, one per selected meta
// context with counts[i] of the extents each, in the compact or the
// extended (64-bit) form; the last chunk carries the DONE flag.
func (t *transmission) replyBlockStatus(r *request, ext []Extent, counts []int) {
	perExtent, head := 8, 4
	typ := wire.ReplyTypeBlockStatus
	if t.extended {
		perExtent, head = 16, 8
		typ = wire.ReplyTypeBlockStatusExt
	}
	r.buf = t.bufs.get(len(counts)*head + perExtent*len(ext))
	p := (*r.buf)[:0]
	r.hdr = r.hdr[:0]
	bounds := make([]int, 0, 2*len(counts)) // payload and header ends, per chunk
	for i, k := range counts {
		p = binary.BigEndian.AppendUint32(p, t.contexts[i].id)
		if t.extended {
			p = binary.BigEndian.AppendUint32(p, uint32(k))
		}
		for _, e := range ext[:k] {
			if t.extended {
				p = binary.BigEndian.AppendUint64(p, uint64(e.Length))
				p = binary.BigEndian.AppendUint64(p, uint64(e.Flags))
			} else {
				p = binary.BigEndian.AppendUint32(p, uint32(e.Length))
				p = binary.BigEndian.AppendUint32(p, uint32(e.Flags))
			}
		}
		ext = ext[k:]
		var flags uint16
		if i == len(counts)-1 {
			flags = wire.ReplyFlagDone
		}
		start := 0
		if len(bounds) > 0 {
			start = bounds[len(bounds)-2]
		}
		t.chunkHeader(r, flags, typ, len(p)-start)
		bounds = append(bounds, len(p), len(r.hdr))
	}
	// r.hdr and p are complete: slice them now, as appends may move them.
	r.out = r.out[:0]
	var ps, hs int
	for i := 0; i < len(bounds); i += 2 {
		r.out = append(r.out, r.hdr[hs:bounds[i+1]], p[ps:bounds[i]])
		ps, hs = bounds[i], bounds[i+1]
	}
}
