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

// replyBlockStatus builds the base:allocation status chunk, in the
// compact (BLOCK_STATUS) or extended (BLOCK_STATUS_EXT) layout.
func (t *transmission) replyBlockStatus(r *request, ext []Extent) {
	var size int
	if t.extended {
		size = 8 + 16*len(ext)
	} else {
		size = 4 + 8*len(ext)
	}
	r.buf = t.bufs.get(size)
	p := (*r.buf)[:0]
	p = binary.BigEndian.AppendUint32(p, baseAllocationID)
	if t.extended {
		p = binary.BigEndian.AppendUint32(p, uint32(len(ext)))
		for _, e := range ext {
			p = binary.BigEndian.AppendUint64(p, uint64(e.Length))
			p = binary.BigEndian.AppendUint64(p, uint64(e.Flags))
		}
	} else {
		for _, e := range ext {
			p = binary.BigEndian.AppendUint32(p, uint32(e.Length))
			p = binary.BigEndian.AppendUint32(p, uint32(e.Flags))
		}
	}
	r.hdr = r.hdr[:0]
	typ := wire.ReplyTypeBlockStatus
	if t.extended {
		typ = wire.ReplyTypeBlockStatusExt
	}
	t.chunkHeader(r, wire.ReplyFlagDone, typ, size)
	r.out = append(r.out[:0], r.hdr, p)
}
