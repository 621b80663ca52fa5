package thinpool

import (
	"errors"
	"fmt"
)

var (
	// ErrNoSpace: the data device is full (ENOSPC).
	ErrNoSpace = errors.New("thin pool is out of data space")
	// ErrMetadataSpace: the metadata device is full; the pool has gone
	// read-only (ENOSPC).
	ErrMetadataSpace = errors.New("thin pool is out of metadata space")
	// ErrReadOnly: the pool is in read-only mode after a metadata failure
	// (EIO for writes that need metadata changes).
	ErrReadOnly = errors.New("thin pool is read-only")
	// ErrFailed: the pool has failed; no I/O is possible (EIO).
	ErrFailed = errors.New("thin pool has failed")
	// ErrClosed: the pool or thin was closed.
	ErrClosed = errors.New("thin pool closed")
	// ErrNeedsCheck: the metadata has needs_check set; the pool stays
	// read-only until it is checked (and repaired if need be).
	ErrNeedsCheck = errors.New("the metadata needs a check before the pool can be written again")
	// ErrBusy: the thin device is open.
	ErrBusy = errors.New("thin device is in use")
)

// RangeError reports I/O outside a thin device.
type RangeError struct {
	Off, Len, Size uint64
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("range [%d, +%d) outside the device (%d bytes)", e.Off, e.Len, e.Size)
}

// errStop ends a mapping walk early.
var errStop = errors.New("stop")
