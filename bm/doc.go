// Package bm is the block manager of thind's metadata device, after the
// kernel's dm-block-manager and dm-bufio.
//
// The device is addressed in 4 KiB blocks. Every block type has a Validator
// that stamps its checksum and self-location before a write and checks them
// after a read, exactly as the Linux dm-thin on-disk format requires. Blocks
// live in a cache bounded in bytes; each cached block has a read/write lock,
// and a block is pinned while a caller holds it. Errors name the block and
// the values that disagreed (ChecksumError, LocationError, IOError).
//
// # Locking
//
// Lock and Unlock calls are safe for concurrent use. Flush, FlushAndUnlock,
// DiscardDirty and Forget are not safe beside them: a flush writes and
// stamps dirty blocks it does not lock, and an eviction may meanwhile write
// one back and recycle its buffer. The caller excludes every other call
// for them, as thinmeta does by committing under its lock's write side.
// Its mutexes, outermost first: the
// flush mutex (one Flush or FlushAndUnlock at a time), then one cache
// shard's mutex (misses, write locks, evictions, dirty scans; never two
// shards at once), then a MemDevice's. Block locks are not mutexes and
// never wait: a lock that conflicts fails with a LockError.
//
// The read fast path takes no mutex. A block's lock is one state word
// (free, n readers, writer, evicted); a read lock on a cached block already
// checked with the caller's validator is a CAS from free or n readers to
// n+1. Whatever takes a block out of the free state (a write lock, an
// eviction) does it by CAS from free, so it fails if a reader got in
// first, and a reader that finds a block evicted falls back to the shard
// mutex. The validator is published through an atomic pointer, set before
// the block is first handed out.
package bm
