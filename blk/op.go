package blk

import "fmt"

// Op is the operation of a request.
type Op uint8

// Operations, numbered like the kernel's REQ_OP_* only in spirit: the
// values index per-operation statistics and are not a wire format.
const (
	// OpRead fills Request.Buf from the backend.
	OpRead Op = iota
	// OpWrite stores Request.Buf; with Request.FUA it is durable on completion.
	OpWrite
	// OpDiscard tells the backend the range is unused (punch hole, BLKDISCARD);
	// it reads back as zeros on files.
	OpDiscard
	// OpWriteZeroes makes the range read back as zeros.
	OpWriteZeroes
	// OpFlush makes every write completed before it was issued durable.
	OpFlush
	// OpCopy makes [Off, Off+Len) read as [Src, Src+Len) does, without
	// moving the bytes through memory where the backend can (a reflink
	// clone, copy_file_range), else by reading and writing.
	OpCopy

	// NumOps is the number of operations, the length of QueueStats.Ops.
	NumOps = int(OpCopy) + 1
)

var opNames = [NumOps]string{"read", "write", "discard", "write_zeroes", "flush", "copy"}

// String returns the lower-case name used in errors and metric labels.
func (o Op) String() string {
	if int(o) < NumOps {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// hasData reports whether the op moves bytes between memory and the backend.
func (o Op) hasData() bool { return o == OpRead || o == OpWrite }

// Request is one I/O submitted asynchronously with Dispatcher.Submit or
// Plug.Submit, the analogue of a bio: the caller owns it, the dispatcher
// only reads it until End runs.
//
// Keep Requests and their End functions for reuse: a Request that lives in
// a caller's long-lived state and an End that is a method value stored once
// keep submission free of allocations.
type Request struct {
	// Op is the operation.
	Op Op
	// FUA makes a write durable before End is called.
	FUA bool
	// Off is the byte offset on the backend (ignored for OpFlush).
	Off int64
	// Len is the byte length of OpDiscard, OpWriteZeroes and OpCopy.
	// Reads and writes use len(Buf); flushes have none.
	Len int64
	// Src is the source offset of OpCopy; the ranges must not overlap.
	Src int64
	// Buf is the data of OpRead and OpWrite. It must not be touched until
	// End is called.
	Buf []byte
	// End is called exactly once when the request completes, with nil or
	// an *IOError, on a dispatcher or submitter goroutine. It must not
	// block: in particular it must not wait for a tag (submit with a
	// context that waits), since the goroutine running it may be the one
	// that would free the tag. Hand work off instead. End may be nil.
	End func(r *Request, err error)
	// Private is for the submitter, like bio->bi_private.
	Private any
}

// length is the number of bytes the request covers.
func (r *Request) length() int64 {
	switch {
	case r.Op.hasData():
		return int64(len(r.Buf))
	case r.Op == OpFlush:
		return 0
	}
	return r.Len
}
