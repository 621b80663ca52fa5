package btree

import (
	"encoding/binary"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/tm"
)

// ValueType describes the values of a tree's last level (dm_btree_value_type).
// Inc and Dec receive n values packed back to back; they keep the
// reference counts of whatever the values point at right when a shared
// leaf is copied or a tree is deleted. Equal tells an overwrite with the
// same value (no Dec) from a real replacement. Any of them may be nil.
type ValueType struct {
	Size  int
	Inc   func(values []byte, n int) error
	Dec   func(values []byte, n int) error
	Equal func(a, b []byte) bool
}

// Info describes a tree: its transaction manager, its number of levels and
// its value type. Levels above the last map keys to roots of the next
// level's trees.
type Info struct {
	TM     *tm.Manager
	Levels int
	Value  ValueType
}

// le64Type is the value type of the upper levels of a multi-level tree:
// the values are subtree roots, counted as metadata blocks
// (init_le64_type).
func (info *Info) le64Type() *ValueType {
	t := info.TM
	return &ValueType{
		Size: 8,
		Inc: func(v []byte, n int) error {
			for i := 0; i < n; i++ {
				if err := t.Inc(binary.LittleEndian.Uint64(v[8*i:])); err != nil {
					return err
				}
			}
			return nil
		},
		Dec: func(v []byte, n int) error {
			for i := 0; i < n; i++ {
				if err := t.Dec(binary.LittleEndian.Uint64(v[8*i:])); err != nil {
					return err
				}
			}
			return nil
		},
		Equal: func(a, b []byte) bool {
			return binary.LittleEndian.Uint64(a) == binary.LittleEndian.Uint64(b)
		},
	}
}

// incChildren adds a reference to everything node n points at: child
// blocks of an internal node, values of a leaf. Called when a shared node
// is copied, since old and new now both point at them.
func (info *Info) incChildren(n node, vt *ValueType) error {
	nr := n.nrEntries()
	if n.isInternal() {
		for i := 0; i < nr; i++ {
			if err := info.TM.Inc(n.value64(i)); err != nil {
				return err
			}
		}
		return nil
	}
	if vt.Inc != nil && nr > 0 {
		return vt.Inc(n.values(0, nr), nr)
	}
	return nil
}

// Empty creates an empty tree (a leaf with no entries) and returns its root.
func Empty(info *Info) (uint64, error) {
	blk, err := info.TM.NewBlock(NodeValidator)
	if err != nil {
		return 0, err
	}
	initNode(node(blk.Data()), LeafNode, info.Value.Size)
	loc := blk.Location()
	info.TM.Unlock(blk)
	return loc, nil
}

// readNode locks a node for reading and checks that its value size is the
// one expected at its place in the tree.
func readNode(t *tm.Manager, b uint64, leafValueSize int) (bm.Block, node, error) {
	blk, err := t.ReadLock(b, NodeValidator)
	if err != nil {
		return bm.Block{}, nil, err
	}
	n := node(blk.Data())
	if err := checkValueSize(n, b, leafValueSize); err != nil {
		t.Unlock(blk)
		return bm.Block{}, nil, err
	}
	return blk, n, nil
}

func checkValueSize(n node, b uint64, leafValueSize int) error {
	if n.isLeaf() && n.valueSize() != leafValueSize {
		return &NodeError{Block: b, Reason: "leaf value size " + itoa(n.valueSize()) + ", expected " + itoa(leafValueSize)}
	}
	return nil
}

func itoa(v int) string {
	var buf [20]byte
	i := len(buf)
	if v == 0 {
		return "0"
	}
	neg := v < 0
	if neg {
		v = -v
	}
	for v > 0 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}
