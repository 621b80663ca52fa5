package blk

// Backend is the backing store the dispatcher drives: a file, a block
// device, or an implementation of the caller's (the engine's tests use a
// crash-simulating memory device that records which writes were flushed).
//
// The dispatcher validates every request against Size and the backend's
// alignment before calling it, so a Backend may assume in-range, non-empty
// requests. It calls the methods concurrently from many goroutines, never
// after Close, and never calls Close twice.
type Backend interface {
	// ReadAt and WriteAt follow io.ReaderAt and io.WriterAt.
	ReadAt(p []byte, off int64) (n int, err error)
	WriteAt(p []byte, off int64) (n int, err error)
	// Discard releases the range. What it reads back afterwards is up to
	// the backend (files read zeros, devices depend on the hardware);
	// WriteZeroes is the operation that guarantees zeros.
	Discard(off, length int64) error
	// WriteZeroes makes the range read back as zeros.
	WriteZeroes(off, length int64) error
	// Flush makes every completed write durable (fdatasync).
	Flush() error
	// Size is the usable size in bytes.
	Size() (int64, error)
	Close() error
}

// VectoredBackend is implemented by backends that can serve a merged
// request, several buffers at contiguous offsets, in one call
// (preadv/pwritev). Without it the dispatcher calls ReadAt/WriteAt per
// buffer, which is correct but loses the point of merging.
type VectoredBackend interface {
	Backend
	// ReadvAt fills bufs from consecutive bytes starting at off and
	// returns the total read; a short count comes with an error.
	ReadvAt(bufs [][]byte, off int64) (n int, err error)
	// WritevAt stores bufs at consecutive bytes starting at off. With fua
	// the bytes are durable when it returns, as if Flush had followed
	// (pwritev2 with RWF_DSYNC).
	WritevAt(bufs [][]byte, off int64, fua bool) (n int, err error)
}

// NoWaitReader is implemented by backends that can tell a read they can
// serve at once, from memory, from one that would wait for the device:
// File, buffered, with preadv2's RWF_NOWAIT. Dispatcher.TryRead uses it.
type NoWaitReader interface {
	Backend
	// ReadAtNoWait fills p whole from off without waiting for I/O and
	// returns true, or returns false if it cannot (part of the range is
	// not cached); p's contents are then undefined.
	ReadAtNoWait(p []byte, off int64) (bool, error)
}

// AlignedBackend is implemented by backends with alignment rules for data
// transfers (O_DIRECT). The dispatcher rejects misaligned reads and writes
// with an *AlignmentError before taking a tag.
type AlignedBackend interface {
	Backend
	// IOAlignment returns the required alignment of buffer addresses and
	// of offsets and lengths; 1 means none.
	IOAlignment() (mem, off int)
}

// CopyBackend is implemented by backends that can copy a range within
// themselves without the bytes passing through the caller's memory: a
// reflink clone that shares the file system's blocks (FICLONERANGE on
// XFS with reflink=1 or btrfs), or an in-kernel copy (copy_file_range).
// The dispatcher copies by reading and writing where it is missing or
// reports ErrNotSupported.
type CopyBackend interface {
	Backend
	// CopyRange makes [dst, dst+length) read as [src, src+length) does;
	// the ranges do not overlap. An error wrapping ErrNotSupported means
	// nothing was changed that matters: the dispatcher copies instead.
	CopyRange(src, dst, length int64) error
}

// HoleBackend is implemented by backends that can tell holes from data:
// ranges of a sparse file that were never written, or were punched, read
// as zeros with nothing stored behind them (SEEK_HOLE and SEEK_DATA).
type HoleBackend interface {
	Backend
	// Holes calls fn for each hole in [off, off+length), in order. A
	// range written but not yet flushed counts as data.
	Holes(off, length int64, fn func(off, length int64) error) error
}
