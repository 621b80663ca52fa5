// Package faultdev puts faults under thind's two stores: a Device wraps
// the metadata device the block manager runs on (bm.Device) or the data
// device behind the dispatcher (blk.Backend), and fails the operations its
// rules match, or cuts the power.
//
// It follows pebble's vfs/errorfs (rules that pick operations by kind and
// place and fail them) and its crashable MemFS (a crash keeps only what
// was synced), but over any device, a real file included: every write
// saves the bytes it replaces until the next successful flush, and Cut
// puts them back, so the file then holds what a disk that lost power
// could hold. A daemon or an engine can be cut while it runs and its
// files reopened afterwards.
//
// A rule matches by operation, by the byte range an operation touches,
// by how many matching operations it lets through first and how many it
// fails, and with a probability drawn from the device's seed, so a run
// replays from its seed. An injected error wraps syscall.EIO, which is
// what the NBD server answers for it.
//
// Tests only: nothing in service imports this package.
package faultdev
