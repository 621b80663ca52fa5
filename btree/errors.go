package btree

import (
	"errors"
	"fmt"

	"github.com/thind-storage/thind/bm"
)

// ErrNotFound is returned when a key is not in the tree (-ENODATA).
var ErrNotFound = errors.New("btree: key not found")

// NodeError reports a node that is valid on its own but wrong where it
// stands in a tree: the wrong value size for its level, a tree too deep.
type NodeError struct {
	Block  uint64
	Reason string
}

func (e *NodeError) Error() string {
	return fmt.Sprintf("btree node %d: %s", e.Block, e.Reason)
}

// Is makes errors.Is(err, bm.ErrCorruption) true.
func (e *NodeError) Is(target error) bool { return target == bm.ErrCorruption }

// MaxDepth bounds every walk: a valid tree of 2^64 keys at the minimum fill
// is far shallower, so a deeper one is a cycle in corrupt metadata.
const MaxDepth = 32
