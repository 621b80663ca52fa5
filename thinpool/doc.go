// Package thinpool is the data path of a thin pool: dm-thin-pool's target
// logic (Linux drivers/md/dm-thin.c) over a metadata.Pool and a blk
// dispatcher in front of the data device.
//
// Every I/O is cut at data block boundaries. Reads, and writes to a block
// the thin owns alone, join the thin's in-flight set (all_io_ds) and look
// the mapping up without a prison cell. Changes of a mapping (provisioning,
// breaking sharing, unmapping) hold the block's virtual cell in the bio
// prison, so they never race each other. A block unmapped or remapped
// away is not punched or reused before the commit of its transaction, and
// that commit first waits for the I/O in flight: no I/O can ever see a
// freed block's new life. (The kernel instead detains a cell for every
// bio; this keeps the hot path free of the prison.)
//
//   - read of an unmapped block: zeroes, no data I/O;
//   - write to an unmapped block: provision a data block (zeroing what the
//     write does not cover, unless block zeroing is off), write, map;
//   - write to a shared block (mapped before the thin's last snapshot):
//     break sharing, copying the old block unless the write covers it;
//   - discard: unmap whole blocks, pass freed data blocks down as holes
//     at the next commit, and answer once that commit has punched them;
//   - FLUSH, and FUA on a thin with uncommitted changes: flush the data
//     device, then commit the metadata, before answering.
//
// Data I/O goes through the blk dispatcher. A request that reaches the
// data device in one piece issues it directly, in the caller's goroutine;
// one that reaches it in several (a read or in-place write spanning data
// blocks) submits the pieces through a blk.Plug and waits for them all (ioBatch,
// batch.go), so that they merge where they meet and run in parallel.
// Filling a new block (zeroing, copy on write) stays direct: a copy of a
// 2 MiB block on ext4 took twice as long split around the write and run
// in parallel with it. A mapping changes only after the data it points to
// has completed, and a commit waits for in-place writes until theirs has (they stay in the
// thin's in-flight set until the batch is waited for).
//
// Metadata changes run under the transaction lock's read side; a commit
// takes its write side, so a commit never captures a half-made change
// (a block allocated but not yet mapped would be a leak after a crash).
//
// # Locking
//
// The ordered locks, outermost first; a goroutine holding one takes only
// locks below it. internal/lockorder gives each its rank, and builds with
// -tags invariants panic on an acquisition out of this order:
//
//  1. Pool.hold (PoolHold): keeps background commits out while a caller
//     makes a change that must reach the disk in one commit with state of
//     its own (the daemon's catalog transaction id).
//  2. Thin.writes (ThinWrites): its write side quiesces a thin's writes
//     (snapshot of an open origin, shrink); writes hold its read side.
//  3. A prison cell (Cell): the cell of a virtual block or range, held
//     while a request changes the mappings it covers. A request holds at
//     most one cell, so cells never wait for each other.
//  4. Pool.txn (Txn): the read side for every metadata change, the write
//     side for commit and abort.
//  5. Pool.thinsMu (Thins): the open thins.
//  6. thinmeta.Pool.mu (Metadata): the metadata lock (see thinmeta).
//  7. Leaf locks (Leaf): Pool.modeMu, Pool.spaceMu, the clean-block bits,
//     the passdown list and the notifier's queue. Each is held for a few
//     statements and no lock is ever taken under it.
//
// Below the metadata lock come, unranked because the tree code takes them
// under it alone: bm's flush mutex, then a cache shard's mutex, then a
// memory device's. The prison's region mutexes and a DeferredSet's mutex
// are held only inside bioprison calls, which take nothing else.
//
// The lock-free paths, each with the invariant that makes it safe:
//
//   - bm's read fast path: a cached, validated block is read-locked by a
//     CAS on its state word. Everything that takes a block out of the free
//     state (write lock, eviction) does it by CAS too, so a reader and a
//     writer can never both win.
//   - thinmeta's lookup cache: a bucket is written under its own sequence
//     count (odd while written) and a lookup trusts it only if the count is
//     even and unchanged across the read. Fills hold the metadata lock's
//     read side and take the count by CAS; changes hold its write side.
//   - The pool's reuses count, read like a seqcount: every commit and
//     abort moves it on before a freed data block may be reused or
//     punched, and a read that sees it move reads its blocks again,
//     counted in the thin's all-I/O set so the next commit waits for it.
//   - bioprison.DeferredSet's Inc and Dec count on the newest generation
//     with atomics; only the Dec that drains a sealed generation takes the
//     set's mutex, and sealing happens under it.
//   - Pool.mode, the metadata-low flags and mdDirty are atomics read on
//     every request; their writers serialise on modeMu or the txn lock.
//
// Callbacks. OnModeChange and OnLowWater run on the notifier's goroutine,
// one at a time and in order, with no lock of the pool held, so they may
// call back into the pool (Stats, Commit, SetWriteMode). The metadata
// threshold function the pool registers with thinmeta runs under the
// metadata lock and only stores an atomic flag. Test hooks are read from
// an atomic pointer, so a test may set them while the pool serves.
package thinpool
