package bm

import (
	"errors"
	"fmt"
)

// ErrCorruption is matched (errors.Is) by every error that means the
// on-disk bytes are wrong rather than the device failing.
var ErrCorruption = errors.New("metadata corruption")

// ErrOutOfRange is returned for a block number past the end of the device.
var ErrOutOfRange = errors.New("block beyond end of metadata device")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("block manager closed")

// ErrReadOnly is returned for a write lock on a read-only manager.
var ErrReadOnly = errors.New("metadata device is read-only")

// ChecksumError reports a block whose stored checksum does not match its
// content. Want is the checksum computed from the content, Got the one
// stored in the block.
type ChecksumError struct {
	Block     uint64
	Validator string
	Want, Got uint32
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("block %d (%s): checksum mismatch: computed %d, stored %d", e.Block, e.Validator, e.Want, e.Got)
}

// Is makes errors.Is(err, ErrCorruption) true.
func (e *ChecksumError) Is(target error) bool { return target == ErrCorruption }

// LocationError reports a block whose self-location field names another
// block: a misdirected write or a stale copy.
type LocationError struct {
	Block     uint64
	Validator string
	Got       uint64
}

func (e *LocationError) Error() string {
	return fmt.Sprintf("block %d (%s): block number field says %d", e.Block, e.Validator, e.Got)
}

// Is makes errors.Is(err, ErrCorruption) true.
func (e *LocationError) Is(target error) bool { return target == ErrCorruption }

// FormatError reports a block whose checksum is right but whose content
// breaks a rule of its type (a bad magic, an impossible entry count).
type FormatError struct {
	Block     uint64
	Validator string
	Reason    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("block %d (%s): %s", e.Block, e.Validator, e.Reason)
}

// Is makes errors.Is(err, ErrCorruption) true.
func (e *FormatError) Is(target error) bool { return target == ErrCorruption }

// ValidatorMismatchError reports a cached block locked as two different
// types: one block reachable as, say, both a B-tree node and a bitmap.
type ValidatorMismatchError struct {
	Block     uint64
	Have, Use string
}

func (e *ValidatorMismatchError) Error() string {
	return fmt.Sprintf("block %d: validated as %s, now used as %s", e.Block, e.Have, e.Use)
}

// Is makes errors.Is(err, ErrCorruption) true.
func (e *ValidatorMismatchError) Is(target error) bool { return target == ErrCorruption }

// LockError reports a lock request that conflicts with a lock already
// held. Writers are serialized above this layer, so a conflict means a
// recursive lock: a cycle in corrupt metadata or a bug, never contention.
type LockError struct {
	Block uint64
	Want  string
	Held  string
}

func (e *LockError) Error() string {
	return fmt.Sprintf("block %d: %s lock requested while %s locked (recursive lock)", e.Block, e.Want, e.Held)
}

// Is makes errors.Is(err, ErrCorruption) true: on valid metadata a
// recursion cannot happen.
func (e *LockError) Is(target error) bool { return target == ErrCorruption }

// IOError wraps a failure of the device itself.
type IOError struct {
	Block uint64
	Op    string
	Err   error
}

func (e *IOError) Error() string {
	return fmt.Sprintf("block %d: %s: %v", e.Block, e.Op, e.Err)
}

func (e *IOError) Unwrap() error { return e.Err }
