// Package spacemap implements the dm-thin space maps (Linux
// drivers/md/persistent-data/dm-space-map-*.c): reference counts for every
// block of a device held as 2-bit bitmap entries, with counts above 2 in a
// reference-count B-tree.
//
// The data space map indexes its bitmaps with a B-tree; the metadata space
// map with a single index block, and it allocates from itself while recording
// its own changes, so it queues reference-count changes made while it is
// recursing and applies them when the outermost call returns.
package spacemap
