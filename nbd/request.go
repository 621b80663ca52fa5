package nbd

import (
	"time"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// request is one in-flight request and its reply. A connection owns
// MaxInFlight of them, recycled through its free list; their scratch
// slices keep their capacity, so steady-state requests allocate nothing.
type request struct {
	wire.Request

	// errno and msg are set by validation (the backend is then not
	// called) or by execution.
	errno uint32
	msg   string

	buf    *[]byte // pooled payload: WRITE data, READ data, status chunk
	held   int64   // budget bytes held for buf
	maxExt int     // BLOCK_STATUS: the extents held covers
	start  time.Time

	hdr  []byte   // reply headers and small payloads
	out  [][]byte // the reply as written: slices of hdr and buf
	ext  []Extent // BlockStatus results
	segs []segment
}

// segment is one piece of a structured READ reply.
type segment struct {
	off, length int64 // relative to the request's offset
	hole        bool
}

// setErr records an error answer decided without the backend.
func (r *request) setErr(errno uint32, msg string) {
	r.errno, r.msg = errno, msg
}

// isWrite reports commands that modify the export.
func isWrite(cmd uint16) bool {
	return cmd == wire.CmdWrite || cmd == wire.CmdTrim || cmd == wire.CmdWriteZeroes
}

// validate decides the answer to r that needs no backend, checking in this
// order and answering the first failure: the command, its flags (NBD
// spec, doc/proto.md "Command flags"), commands not advertised, writes to a
// read-only export (EPERM), the payload, the range, then size, alignment
// and BLOCK_STATUS's length. The order is what
// clients can observe when a request breaks several rules; docs/nbd.md
// lists it with its reasons. The caller has already
// handled bad magic, DISC and oversized payloads, which end the
// connection.
func (t *transmission) validate(r *request) {
	cmd, fl := r.Type, r.Flags
	if cmd > wire.CmdBlockStatus || cmd == wire.CmdDisc {
		r.setErr(wire.EINVAL, "unknown command")
		return
	}
	// Flags: unknown bits, and known bits on the wrong command or without
	// the negotiation that makes them legal.
	switch {
	case fl&^wire.CmdFlagsKnown != 0:
		r.setErr(wire.EINVAL, "unknown command flag")
		return
	case fl&wire.CmdFlagFUA != 0 && t.flags&wire.TransSendFUA == 0:
		r.setErr(wire.EINVAL, "FUA was not advertised")
		return
	case fl&wire.CmdFlagNoHole != 0 && cmd != wire.CmdWriteZeroes:
		r.setErr(wire.EINVAL, "NO_HOLE is only valid on WRITE_ZEROES")
		return
	case fl&wire.CmdFlagDF != 0 && (cmd != wire.CmdRead || t.flags&wire.TransSendDF == 0):
		r.setErr(wire.EINVAL, "DF is only valid on READ with structured replies")
		return
	case fl&wire.CmdFlagReqOne != 0 && cmd != wire.CmdBlockStatus:
		r.setErr(wire.EINVAL, "REQ_ONE is only valid on BLOCK_STATUS")
		return
	case fl&wire.CmdFlagFastZero != 0 && (cmd != wire.CmdWriteZeroes || t.flags&wire.TransSendFastZero == 0):
		r.setErr(wire.EINVAL, "FAST_ZERO is only valid on WRITE_ZEROES when advertised")
		return
	case fl&wire.CmdFlagPayloadLen != 0 && !t.extended:
		r.setErr(wire.EINVAL, "PAYLOAD_LEN needs extended headers")
		return
	}
	// Commands whose flag was not advertised. CACHE is let through:
	// some clients send it regardless, and as a hint it is harmless.
	switch {
	case cmd == wire.CmdFlush && t.flags&wire.TransSendFlush == 0,
		cmd == wire.CmdTrim && t.flags&wire.TransSendTrim == 0 && !t.readOnly,
		cmd == wire.CmdWriteZeroes && t.flags&wire.TransSendWriteZeroes == 0 && !t.readOnly:
		r.setErr(wire.EINVAL, "command was not advertised")
		return
	case cmd == wire.CmdBlockStatus && (!t.chunked || len(t.contexts) == 0):
		r.setErr(wire.EINVAL, "BLOCK_STATUS needs structured replies and a selected meta context")
		return
	}
	if t.readOnly && isWrite(cmd) {
		r.setErr(wire.EPERM, "export is read-only")
		return
	}
	payload := r.PayloadLength(t.extended)
	if payload > 0 && cmd != wire.CmdWrite {
		r.setErr(wire.EINVAL, "command takes no payload")
		return
	}
	if cmd == wire.CmdWrite && payload > MaxPayload {
		r.setErr(wire.EINVAL, "write payload exceeds the 32 MiB maximum")
		return
	}
	if cmd == wire.CmdFlush {
		return // offset and length are meaningless; qemu ignores them too
	}
	// Overflow-safe range check against the live size: never compute
	// offset+length.
	if size := t.size(); r.Offset > size || r.Length > size-r.Offset {
		if cmd == wire.CmdWrite || cmd == wire.CmdWriteZeroes {
			r.setErr(wire.ENOSPC, "request beyond the end of the export")
		} else {
			r.setErr(wire.EINVAL, "request beyond the end of the export")
		}
		return
	}
	if cmd == wire.CmdRead && r.Length > MaxPayload {
		if fl&wire.CmdFlagDF != 0 {
			r.setErr(wire.EOVERFLOW, "read with DF exceeds the 32 MiB maximum")
		} else {
			r.setErr(wire.EINVAL, "read exceeds the 32 MiB maximum")
		}
		return
	}
	if t.minBlock > 1 && (r.Offset%t.minBlock != 0 || r.Length%t.minBlock != 0) {
		r.setErr(wire.EINVAL, "request not aligned to the minimum block size")
		return
	}
	if cmd == wire.CmdBlockStatus && r.Length == 0 {
		r.setErr(wire.EINVAL, "BLOCK_STATUS of length 0")
	}
}
