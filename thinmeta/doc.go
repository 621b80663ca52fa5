// Package thinmeta is the dm-thin-pool metadata format (Linux
// drivers/md/dm-thin-metadata.c): the superblock, the device-details tree,
// the two-level mapping tree (device id -> virtual block -> data block and
// time), the metadata snapshot and the resizing of both space maps.
//
// # Locking
//
// One RWMutex, Pool.mu, guards everything below it: lookups share it,
// changes hold it exclusively, as pmd->root_lock does in the kernel. It is
// rank Metadata in internal/lockorder, below every lock of the engine
// (thinpool's package doc has the whole order). tm, btree and spacemap take
// no locks, since the metadata space map re-enters itself; bm's flush and
// shard mutexes are taken under Pool.mu and never hold it.
//
// Lookups may skip Pool.mu on two lock-free paths:
//
//   - The published device views (Pool.views, an atomic pointer to a map
//     that is replaced, never changed): a device's view holds its
//     generation and snapshot time, republished whenever a device comes or
//     goes, the pool aborts or fails. A Finder keeps the view it last saw
//     and searches again when the pointer moves.
//   - The lookup cache (lookupcache.go): each bucket has a sequence count,
//     odd while it is written. A fill holds Pool.mu's read side and takes
//     the count by CAS (fills race each other, never a change); a change
//     holds the write side and adds one. A lookup trusts a bucket only if
//     the count was even and the same before and after it read the bucket,
//     and a bucket tagged with a device's old generation never matches.
//
// The function given to SetMetadataThreshold runs with Pool.mu held (from
// inside an allocation), so it must not call back into the Pool.
package thinmeta
