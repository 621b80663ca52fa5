package btree

import (
	"fmt"

	"github.com/thind-storage/thind/bm"
)

// BtreeCsumXor is BTREE_CSUM_XOR of dm-btree-spine.c.
const BtreeCsumXor = 121107

// NodeValidator checks B-tree nodes as the kernel's node_check does, plus
// thin_check's rule that max_entries is a multiple of three.
var NodeValidator bm.Validator = &bm.StampedValidator{
	TypeName: "btree node",
	Xor:      BtreeCsumXor,
	Extra:    checkNode,
}

func checkNode(data []byte, loc uint64) error {
	n := node(data)
	fail := func(format string, args ...any) error {
		return &bm.FormatError{Block: loc, Validator: "btree node", Reason: fmt.Sprintf(format, args...)}
	}
	vs, maxE, nr := n.valueSize(), n.maxEntries(), n.nrEntries()
	if vs == 0 || headerSize+(8+vs)*maxE > bm.BlockSize || maxE > bm.BlockSize {
		return fail("max_entries %d with value_size %d does not fit in a block", maxE, vs)
	}
	if maxE == 0 || maxE%3 != 0 {
		return fail("max_entries %d is not a positive multiple of 3", maxE)
	}
	if nr > maxE {
		return fail("nr_entries %d exceeds max_entries %d", nr, maxE)
	}
	if f := n.flags(); f != InternalNode && f != LeafNode {
		return fail("flags %#x are neither internal nor leaf", f)
	}
	if n.isInternal() && vs != 8 {
		return fail("internal node with value_size %d", vs)
	}
	return nil
}
