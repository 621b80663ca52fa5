package btree

// Node is a read-only view of a B-tree node's bytes, for tools that walk
// trees with their own rules (the checker, the repairer).
type Node struct{ n node }

// ViewNode returns a view of data, a block that passed NodeValidator.
func ViewNode(data []byte) Node { return Node{node(data)} }

// IsLeaf reports whether the node is a leaf.
func (v Node) IsLeaf() bool { return v.n.isLeaf() }

// IsInternal reports whether the node is an internal node.
func (v Node) IsInternal() bool { return v.n.isInternal() }

// NrEntries returns the number of entries in use.
func (v Node) NrEntries() int { return v.n.nrEntries() }

// MaxEntries returns the node's capacity.
func (v Node) MaxEntries() int { return v.n.maxEntries() }

// ValueSize returns the size of each value.
func (v Node) ValueSize() int { return v.n.valueSize() }

// Key returns key i.
func (v Node) Key(i int) uint64 { return v.n.key(i) }

// Value returns value i (aliasing the block).
func (v Node) Value(i int) []byte { return v.n.value(i) }

// Value64 returns value i as a little-endian uint64.
func (v Node) Value64(i int) uint64 { return v.n.value64(i) }

// Keys returns the keys in use, 8 little-endian bytes each, aliasing the
// block: for loops over a whole node.
func (v Node) Keys() []byte { return v.n.keys(0, v.n.nrEntries()) }

// Values returns the values in use, packed back to back, aliasing the
// block.
func (v Node) Values() []byte { return v.n.values(0, v.n.nrEntries()) }
