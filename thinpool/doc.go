// Package thinpool is the data path of a thin pool: dm-thin-pool's target
// logic (Linux drivers/md/dm-thin.c) over a metadata.Pool and a blk
// dispatcher in front of the data device.
//
// Every I/O is cut at data block boundaries and, block by block, follows
// the kernel's protocol: the request detains the block's virtual cell in
// the bio prison (so it waits for a block being provisioned, shared or
// discarded), looks up the mapping, joins the thin's all-I/O deferred set,
// and releases the cell before the data I/O. Changes of a mapping keep the
// cell, and a change that drops a mapping first waits for the I/O that
// joined the deferred set before it, so no I/O ever reads a data block that
// has been unmapped under it.
//
//   - read of an unmapped block: zeroes, no data I/O;
//   - write to an unmapped block: provision a data block (zeroing what the
//     write does not cover, unless block zeroing is off), write, map;
//   - write to a shared block (mapped before the thin's last snapshot):
//     break sharing, copying the old block unless the write covers it;
//   - discard: unmap whole blocks, pass freed data blocks down as holes;
//   - FLUSH, and FUA on a thin with uncommitted changes: flush the data
//     device, then commit the metadata, before answering.
//
// Metadata changes run under the transaction lock's read side; a commit
// takes its write side, so a commit never captures a half-made change
// (a block allocated but not yet mapped would be a leak after a crash).
package thinpool
