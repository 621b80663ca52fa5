package metatools

import (
	"fmt"

	"github.com/thind-storage/thind/btree"
)

// TreeError names the node where reading a tree stopped.
type TreeError struct {
	Block uint64
	Tree  string
	Fault string
}

func (e *TreeError) Error() string {
	return fmt.Sprintf("block %d (%s): %s", e.Block, e.Tree, e.Fault)
}

// readTree calls fn for every entry of a single-level tree in key order,
// checking each node before using it: checksum, location, shape, value
// size and key order. Shared subtrees are read again each time, so every
// device sees all its mappings. It stops at the first bad node.
func readTree(img *Image, name string, root uint64, valueSize int, fn func(key uint64, value []byte) error) error {
	var last uint64
	first := true
	var walk func(b uint64, depth int) error
	walk = func(b uint64, depth int) error {
		if depth > btree.MaxDepth {
			return &TreeError{b, name, "tree too deep (a cycle?)"}
		}
		blk, err := img.BM.ReadLock(b, btree.NodeValidator)
		if err != nil {
			return &TreeError{b, name, describe(err)}
		}
		defer img.BM.Unlock(blk)
		n := btree.ViewNode(blk.Data())
		vs := valueSize
		if n.IsInternal() {
			vs = 8
		}
		if n.ValueSize() != vs {
			return &TreeError{b, name, fmt.Sprintf("value size %d, expected %d", n.ValueSize(), vs)}
		}
		nr := n.NrEntries()
		for i := 1; i < nr; i++ {
			if n.Key(i) <= n.Key(i-1) {
				return &TreeError{b, name, fmt.Sprintf("keys are out of order, %d <= %d", n.Key(i), n.Key(i-1))}
			}
		}
		for i := 0; i < nr; i++ {
			if n.IsInternal() {
				if err := walk(n.Value64(i), depth+1); err != nil {
					return err
				}
				continue
			}
			k := n.Key(i)
			if !first && k <= last {
				return &TreeError{b, name, fmt.Sprintf("keys are out of order across leaves, %d <= %d", k, last)}
			}
			first, last = false, k
			if err := fn(k, n.Value(i)); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root, 0)
}
