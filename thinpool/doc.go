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
// Metadata changes run under the transaction lock's read side; a commit
// takes its write side, so a commit never captures a half-made change
// (a block allocated but not yet mapped would be a leak after a crash).
package thinpool
