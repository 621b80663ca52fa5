// Package thinmeta is the dm-thin-pool metadata format (Linux
// drivers/md/dm-thin-metadata.c): the superblock, the device-details tree,
// the two-level mapping tree (device id -> virtual block -> data block and
// time), the metadata snapshot and the resizing of both space maps.
//
// One RWMutex guards everything below it: lookups share it, changes hold it
// exclusively, as pmd->root_lock does in the kernel.
package thinmeta
