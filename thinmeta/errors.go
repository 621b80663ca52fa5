package thinmeta

import "errors"

var (
	// ErrExists is returned when creating a device id already in use.
	ErrExists = errors.New("thin device already exists")
	// ErrNoDevice is returned for an unknown device id.
	ErrNoDevice = errors.New("no such thin device")
	// ErrNotMapped is returned when a virtual block has no mapping.
	ErrNotMapped = errors.New("block not mapped")
	// ErrFailed is returned once the pool's metadata has failed: a
	// failed abort leaves nothing trustworthy in core.
	ErrFailed = errors.New("pool metadata has failed")
	// ErrReadOnly is returned for changes to read-only metadata.
	ErrReadOnly = errors.New("pool metadata is read-only")
	// ErrTransactionID is returned when the current transaction id does
	// not match.
	ErrTransactionID = errors.New("mismatched transaction id")
	// ErrMetadataSnapExists is returned when a metadata snapshot is held.
	ErrMetadataSnapExists = errors.New("a metadata snapshot is already held")
	// ErrNoMetadataSnap is returned when no metadata snapshot is held.
	ErrNoMetadataSnap = errors.New("no metadata snapshot held")
	// ErrNotFormatted is returned when opening an all-zero device
	// without formatting.
	ErrNotFormatted = errors.New("metadata device is not formatted")
	// ErrNoMetadataSpace is returned for a data grow whose space map
	// the free metadata blocks cannot hold.
	ErrNoMetadataSpace = errors.New("not enough free metadata blocks")
	// ErrTooManyBlocks is returned for a data device larger than the
	// format's 40-bit block numbers address.
	ErrTooManyBlocks = errors.New("more data blocks than the format addresses")
	// ErrShrink is returned for an attempt to shrink a space map.
	ErrShrink = errors.New("cannot reduce the size of a space map")
	// ErrUnsupported is returned for metadata using features this
	// implementation (like Linux) does not know.
	ErrUnsupported = errors.New("unsupported metadata feature")
)
