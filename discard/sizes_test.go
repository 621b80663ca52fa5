package discard

import "github.com/thind-storage/thind/thinmeta"

// The tests use the block sizes real pools have, from the rule's one home.
const (
	minBlockSize = thinmeta.MinDataBlockSectors * SectorSize
	maxBlockSize = thinmeta.MaxDataBlockSectors * SectorSize
)
