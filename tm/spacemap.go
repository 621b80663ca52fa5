package tm

// SpaceMap is what the transaction manager needs from the metadata space
// map (dm-space-map.h). It is declared here, where it is consumed, because
// the space map itself is built on this package: spacemap implements it
// and ties the knot.
//
// Space maps must never hand out a block that the last committed
// transaction uses, even if it was freed in this one: the committed
// superblock may still reach it.
type SpaceMap interface {
	// NewBlock allocates a block with a reference count of one.
	NewBlock() (uint64, error)
	Inc(b uint64) error
	Dec(b uint64) error
	Count(b uint64) (uint32, error)
	CountIsMoreThanOne(b uint64) (bool, error)
	// Commit makes the space map's own on-disk structures current, so
	// that its root can be copied into the superblock.
	Commit() error
}
