// Package btree implements copy-on-write B+ trees in the dm-btree on-disk
// node format (Linux drivers/md/persistent-data/dm-btree*.c).
//
// Keys are uint64, values are fixed-size byte strings described by a
// ValueType whose Inc and Dec callbacks keep reference counts right when a
// shared node is shadowed or a tree is deleted. Multi-level trees (such as
// dm-thin's device id -> virtual block mapping) are trees whose leaf values at
// the upper levels are roots of the next level's trees.
package btree
