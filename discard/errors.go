package discard

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels for errors.Is. The engine maps ErrOverflow to EOVERFLOW and
// ErrOutOfRange to EINVAL (or the protocol's equivalent); ErrBlockSize and
// ErrDevSize reject a bad configuration before any request is seen.
var (
	ErrBlockSize  = errors.New("discard: invalid block size")
	ErrDevSize    = errors.New("discard: invalid device size")
	ErrOverflow   = errors.New("discard: range overflows 64 bits")
	ErrOutOfRange = errors.New("discard: range extends past the end of the device")
)

// RangeError reports a request range the device cannot take. Err is
// ErrOverflow or ErrOutOfRange.
type RangeError struct {
	Off, Len uint64 // the request, in bytes
	DevSize  uint64 // the device size, in bytes
	Err      error
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("discard: %d bytes at offset %d on a device of %d bytes: %s",
		e.Len, e.Off, e.DevSize, strings.TrimPrefix(e.Err.Error(), "discard: "))
}

func (e *RangeError) Unwrap() error { return e.Err }

// SizeError reports a block or device size that is not allowed, and why.
// Err is ErrBlockSize or ErrDevSize.
type SizeError struct {
	Size   uint64
	Reason string
	Err    error
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("%v %d: %s", e.Err, e.Size, e.Reason)
}

func (e *SizeError) Unwrap() error { return e.Err }
