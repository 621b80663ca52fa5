package blk

import (
	"errors"
	"fmt"
)

// ErrClosed is returned for requests submitted after Drain or Close began.
var ErrClosed = errors.New("blk: dispatcher closed")

// ErrNilRequest is returned by Submit for a nil *Request.
var ErrNilRequest = errors.New("blk: nil request")

// ErrNotSupported is wrapped by backend errors for operations the backing
// store cannot do (discard on a file system without hole punching).
var ErrNotSupported = errors.New("blk: operation not supported by backend")

// RangeError reports a request that does not fit the backend: a negative
// offset, a zero or negative length, or a range past the end.
type RangeError struct {
	Op   Op
	Off  int64
	Len  int64
	Size int64 // backend size when the request was checked
}

func (e *RangeError) Error() string {
	switch {
	case e.Len <= 0:
		return fmt.Sprintf("blk: %s at %d: length %d must be positive", e.Op, e.Off, e.Len)
	case e.Off < 0:
		return fmt.Sprintf("blk: %s at %d: negative offset", e.Op, e.Off)
	default:
		return fmt.Sprintf("blk: %s [%d, +%d) beyond backend size %d", e.Op, e.Off, e.Len, e.Size)
	}
}

// AlignmentError reports a request that breaks the backend's alignment
// rules: O_DIRECT needs offset, length and buffer address aligned, and
// block device discards need whole sectors.
type AlignmentError struct {
	Op       Op
	Off      int64
	Len      int64
	Addr     uintptr // buffer address, 0 when the op has no buffer
	OffAlign int     // required alignment of Off and Len
	MemAlign int     // required alignment of Addr, 0 when the op has no buffer
}

func (e *AlignmentError) Error() string {
	if e.MemAlign == 0 {
		return fmt.Sprintf("blk: %s [%d, +%d) not aligned to %d bytes", e.Op, e.Off, e.Len, e.OffAlign)
	}
	return fmt.Sprintf("blk: %s [%d, +%d) buffer %#x: need offset and length aligned to %d, buffer to %d",
		e.Op, e.Off, e.Len, e.Addr, e.OffAlign, e.MemAlign)
}

// OverlapError reports a copy whose source and destination overlap: a
// clone or copy_file_range refuses it, and a copy through memory would
// read bytes it has already overwritten.
type OverlapError struct{ Src, Dst, Len int64 }

func (e *OverlapError) Error() string {
	return fmt.Sprintf("blk: copy of %d bytes from %d to %d: the ranges overlap", e.Len, e.Src, e.Dst)
}

// InvalidOpError reports a request with an Op the dispatcher does not know.
type InvalidOpError struct{ Op Op }

func (e *InvalidOpError) Error() string { return fmt.Sprintf("blk: invalid %s", e.Op) }

// IOError is a backend failure delivered to a request's completion. Off and
// Len are the request's own range even when it was merged: the backend call
// that failed is named by Merged.
type IOError struct {
	Op     Op
	Off    int64
	Len    int64
	Merged int // number of requests in the failed backend call (1 if not merged)
	Err    error
}

func (e *IOError) Error() string {
	if e.Merged > 1 {
		return fmt.Sprintf("blk: %s [%d, +%d) (merged with %d): %v", e.Op, e.Off, e.Len, e.Merged-1, e.Err)
	}
	return fmt.Sprintf("blk: %s [%d, +%d): %v", e.Op, e.Off, e.Len, e.Err)
}

func (e *IOError) Unwrap() error { return e.Err }
