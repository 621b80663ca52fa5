// Package devlock makes one process the owner of a pool's devices, and
// tells anyone else who the owner is.
//
// A regular file is locked with flock(2): exclusive for a daemon or a tool
// that writes, shared for a tool that only reads. flock locks belong to
// the open file description, so two opens in one process conflict as two
// processes do, and /proc/locks names the holder's pid.
//
// A block device is also claimed the way the kernel and LVM claim one: an
// open with O_EXCL, which fails with EBUSY while the device is mounted,
// part of a device-mapper table (an active dm-thin pool) or held by
// another O_EXCL opener. Other openers (thin_dump, dd) are not kept out:
// the claim is advisory for them, as it is for dm-thin.
//
// Lock order: a caller takes the metadata device's lock before the data
// device's, and keeps both until it has closed both devices.
package devlock
