package bioprison

import (
	"errors"
	"fmt"
)

// MaxRange is the largest number of blocks one key may cover, and the
// alignment its range may not cross (the kernel's BIO_PRISON_MAX_RANGE).
// Bounding keys to one aligned window is what lets the prison shard its
// locks by window: two keys that overlap always fall in the same window, so
// they always meet under the same lock.
const MaxRange = 1024

// maxRangeShift is log2(MaxRange), for finding a block's window.
const maxRangeShift = 10

// Space says which block address space a key's range is in.
type Space uint8

const (
	// Virtual is a thin device's logical address space; Dev is the thin id.
	Virtual Space = iota + 1
	// Data is the pool's data device. The kernel keys data cells by thin id
	// as well; callers that want a pool-wide data lock use the same Dev
	// (e.g. 0) for every thin.
	Data
)

func (s Space) String() string {
	switch s {
	case Virtual:
		return "virtual"
	case Data:
		return "data"
	default:
		return fmt.Sprintf("space(%d)", uint8(s))
	}
}

// Key names the blocks a cell locks: the half-open range [Begin, End) of
// blocks of device Dev in address space Space (the kernel's dm_cell_key).
// Two keys collide when they have the same space and device and their
// ranges overlap.
type Key struct {
	Space      Space
	Dev        uint64
	Begin, End uint64
}

// BlockKey is the key of the single block b.
func BlockKey(space Space, dev, b uint64) Key {
	return Key{Space: space, Dev: dev, Begin: b, End: b + 1}
}

func (k Key) String() string {
	return fmt.Sprintf("%s/%d[%d,%d)", k.Space, k.Dev, k.Begin, k.End)
}

// ErrInvalidKey is matched (errors.Is) by every *KeyError.
var ErrInvalidKey = errors.New("bioprison: invalid key")

// KeyError reports a key the prison refuses, and why.
type KeyError struct {
	Key    Key
	Reason string
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("bioprison: invalid key %v: %s", e.Key, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidKey) true for every KeyError.
func (e *KeyError) Is(target error) bool { return target == ErrInvalidKey }

// Validate checks the rules the prison relies on: a known space, a
// non-empty range, at most MaxRange blocks, and no MaxRange-aligned boundary
// inside the range (the kernel's dm_cell_key_has_valid_range).
func (k Key) Validate() error {
	switch {
	case k.Space != Virtual && k.Space != Data:
		return &KeyError{k, "unknown address space"}
	case k.End <= k.Begin:
		return &KeyError{k, "empty range"}
	case k.End-k.Begin > MaxRange:
		return &KeyError{k, fmt.Sprintf("range of %d blocks exceeds %d", k.End-k.Begin, MaxRange)}
	case k.window() != (k.End-1)>>maxRangeShift:
		return &KeyError{k, fmt.Sprintf("range crosses a %d-block boundary", MaxRange)}
	}
	return nil
}

// window is the index of the MaxRange-aligned window holding the key.
func (k Key) window() uint64 { return k.Begin >> maxRangeShift }

// before reports whether a lies wholly before b in the prison's order:
// by space, then device, then range. Keys that are neither before nor after
// each other collide.
func before(a, b *Key) bool {
	if a.Space != b.Space {
		return a.Space < b.Space
	}
	if a.Dev != b.Dev {
		return a.Dev < b.Dev
	}
	return a.End <= b.Begin
}

// Overlaps reports whether k and o collide: same space and device, and
// ranges that share a block.
func (k Key) Overlaps(o Key) bool {
	return k.Space == o.Space && k.Dev == o.Dev && k.Begin < o.End && o.Begin < k.End
}

// Contains reports whether every block of o is also in k.
func (k Key) Contains(o Key) bool {
	return k.Space == o.Space && k.Dev == o.Dev && k.Begin <= o.Begin && o.End <= k.End
}
