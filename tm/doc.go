// Package tm is the transaction manager, after the kernel's
// dm-transaction-manager: the only source of writable metadata blocks.
//
// A block that the last committed transaction can reach is never written in
// place. Writing to it means shadowing it: copy it to a newly allocated block,
// drop a reference to the original and hand out the copy. A block that is
// already a shadow (or new) in this transaction is written in place. Commit
// writes every dirty block, flushes, then writes the superblock and flushes
// again, so a crash leaves either the old or the new transaction on disk.
//
// tm takes no locks: the single writer lock lives above it, in
// thinmeta, as pmd->root_lock does in dm-thin-metadata.c.
package tm
