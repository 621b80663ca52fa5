package btree

import (
	"github.com/thind-storage/thind/bm"
)

// roSpine walks down a tree holding read locks on at most two nodes.
type roSpine struct {
	info  *Info
	nodes [2]bm.Block
	count int
	depth int
}

func (s *roSpine) step(b uint64, leafValueSize int) (node, error) {
	if s.depth++; s.depth > MaxDepth*2 {
		return nil, &NodeError{Block: b, Reason: "tree deeper than any valid tree (cycle?)"}
	}
	if s.count == 2 {
		s.info.TM.Unlock(s.nodes[0])
		s.nodes[0] = s.nodes[1]
		s.count--
	}
	blk, n, err := readNode(s.info.TM, b, leafValueSize)
	if err != nil {
		return nil, err
	}
	s.nodes[s.count] = blk
	s.count++
	return n, nil
}

func (s *roSpine) exit() {
	for i := 0; i < s.count; i++ {
		s.info.TM.Unlock(s.nodes[i])
	}
	s.count = 0
}

// lookupRaw descends from block to the leaf that may hold key, using
// search to pick the entry at each node. It returns the leaf and index.
func (s *roSpine) lookupRaw(block, key uint64, leafValueSize int, hi bool) (node, int, error) {
	for {
		n, err := s.step(block, leafValueSize)
		if err != nil {
			return nil, 0, err
		}
		i := n.bsearch(key, hi)
		if i < 0 || i >= n.nrEntries() {
			return nil, 0, ErrNotFound
		}
		if n.isLeaf() {
			return n, i, nil
		}
		block = n.value64(i)
	}
}

// Lookup finds the value at keys (one key per level) and copies it into
// value, which must hold Value.Size bytes.
func Lookup(info *Info, root uint64, keys []uint64, value []byte) error {
	s := roSpine{info: info}
	defer s.exit()
	for level := 0; level < info.Levels; level++ {
		size := 8
		if level == info.Levels-1 {
			size = info.Value.Size
		}
		n, i, err := s.lookupRaw(root, keys[level], size, false)
		if err != nil {
			return err
		}
		if n.key(i) != keys[level] {
			return ErrNotFound
		}
		if level == info.Levels-1 {
			copy(value, n.value(i))
			return nil
		}
		root = n.value64(i)
	}
	return ErrNotFound
}

// LookupNext finds the entry with the lowest key >= keys[last] in the
// last-level tree selected by the other keys, and returns its key with its
// value copied into value.
func LookupNext(info *Info, root uint64, keys []uint64, value []byte) (uint64, error) {
	s := roSpine{info: info}
	last := info.Levels - 1
	for level := 0; level < last; level++ {
		n, i, err := s.lookupRaw(root, keys[level], 8, false)
		if err != nil {
			s.exit()
			return 0, err
		}
		if n.key(i) != keys[level] {
			s.exit()
			return 0, ErrNotFound
		}
		root = n.value64(i)
	}
	s.exit()
	return lookupNextSingle(info, root, keys[last], value, 0)
}

func lookupNextSingle(info *Info, root, key uint64, value []byte, depth int) (uint64, error) {
	if depth > MaxDepth {
		return 0, &NodeError{Block: root, Reason: "tree deeper than any valid tree (cycle?)"}
	}
	blk, n, err := readNode(info.TM, root, info.Value.Size)
	if err != nil {
		return 0, err
	}
	defer info.TM.Unlock(blk)
	nr := n.nrEntries()
	if n.isInternal() {
		// A lower bound of -1 means every key here is above key: the
		// answer is in the first child.
		i := max(n.lowerBound(key), 0)
		if i >= nr {
			return 0, ErrNotFound
		}
		rkey, err := lookupNextSingle(info, n.value64(i), key, value, depth+1)
		if err == ErrNotFound && i < nr-1 {
			rkey, err = lookupNextSingle(info, n.value64(i+1), key, value, depth+1)
		}
		return rkey, err
	}
	i := n.upperBound(key)
	if i < 0 || i >= nr {
		return 0, ErrNotFound
	}
	copy(value, n.value(i))
	return n.key(i), nil
}

// FindHighestKey returns the highest key of a single-level tree, and false
// when the tree is empty.
func FindHighestKey(info *Info, root uint64) (uint64, bool, error) {
	s := roSpine{info: info}
	defer s.exit()
	size := info.Value.Size
	if info.Levels > 1 {
		size = 8
	}
	for {
		n, err := s.step(root, size)
		if err != nil {
			return 0, false, err
		}
		nr := n.nrEntries()
		if nr == 0 {
			return 0, false, nil
		}
		i := nr - 1
		if n.isLeaf() {
			return n.key(i), true, nil
		}
		root = n.value64(i)
	}
}
