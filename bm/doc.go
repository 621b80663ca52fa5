// Package bm is the block manager of thind's metadata device, after the
// kernel's dm-block-manager and dm-bufio.
//
// The device is addressed in 4 KiB blocks. Every block type has a Validator
// that stamps its checksum and self-location before a write and checks them
// after a read, exactly as the Linux dm-thin on-disk format requires. Blocks
// live in a cache bounded in bytes; each cached block has a read/write lock,
// and a block is pinned while a caller holds it. Errors name the block and
// the values that disagreed (ChecksumError, LocationError, IOError).
package bm
