package btree

// Removal keeps every non-root node above the minimum fill
// (max_entries/3) while holding locks on at most a parent and its
// children, working top-down (dm-btree-remove.c). Before stepping into a
// child, the child is topped up from its siblings:
//
//	[A] the node has one entry: the root; copy the child over it.
//	[B] no left sibling:  rebalance(child, right sibling)
//	[C] no right sibling: rebalance(left sibling, child)
//	[D] both, and few entries between the three: delete the centre,
//	    giving its entries to left and right
//	[E] both, and enough entries: spread them evenly over the three
//
// Two-node rebalancing merges when the pair would fit in one node.

import (
	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/invariants"
)

func mergeThreshold(n node) int { return n.maxEntries() / 3 }

type child struct {
	index int
	blk   bm.Block
	n     node
}

func initChild(info *Info, vt *ValueType, parent node, index int) (child, error) {
	blk, err := shadowChild(info, vt, parent, index)
	if err != nil {
		return child{}, err
	}
	return child{index: index, blk: blk, n: node(blk.Data())}, nil
}

// shiftEntries moves count entries from the end of left to the front of
// right (count > 0) or from the front of right to the end of left
// (count < 0).
func shiftEntries(left, right node, count int) {
	nrLeft, nrRight := left.nrEntries(), right.nrEntries()
	switch {
	case count > 0:
		right.shiftUp(count)
		copyEntries(right, 0, left, nrLeft-count, count)
	case count < 0:
		copyEntries(left, nrLeft, right, 0, -count)
		right.shiftDown(-count)
	default:
		return
	}
	left.setNrEntries(nrLeft - count)
	right.setNrEntries(nrRight + count)
}

func rebalance2Nodes(info *Info, parent node, l, r *child) error {
	left, right := l.n, r.n
	nrLeft, nrRight := left.nrEntries(), right.nrEntries()
	// Each child must keep at least max/3+1 entries, so that the removal
	// that follows, from either of them, leaves at least max/3. With the
	// older threshold, 2*(max/3)+1, an even split gave the left child only
	// max/3 and the removal left it one short (Linux fixed the same in
	// dm-btree-remove.c's __rebalance2).
	if nrLeft+nrRight < 2*(mergeThreshold(left)+1) {
		ran(pathMerge2)
		// Merge right into left. right's children moved, so only the
		// right block itself loses its reference.
		copyEntries(left, nrLeft, right, 0, nrRight)
		left.setNrEntries(nrLeft + nrRight)
		parent.deleteAt(r.index)
		return info.TM.Dec(r.blk.Location())
	}
	ran(pathRedistribute2)
	targetLeft := (nrLeft + nrRight) / 2
	shiftEntries(left, right, nrLeft-targetLeft)
	parent.setKey(r.index, right.key(0))
	return nil
}

func rebalance2(s *shadowSpine, vt *ValueType, leftIndex int) error {
	ran(pathRebalance2)
	info := s.info
	parent := node(s.current().Data())
	l, err := initChild(info, vt, parent, leftIndex)
	if err != nil {
		return err
	}
	defer info.TM.Unlock(l.blk)
	r, err := initChild(info, vt, parent, leftIndex+1)
	if err != nil {
		return err
	}
	defer info.TM.Unlock(r.blk)
	return rebalance2Nodes(info, parent, &l, &r)
}

// deleteCenterNode pours the centre into left, the rest into right, drops
// the centre and rebalances the remaining pair.
func deleteCenterNode(info *Info, parent node, l, c, r *child) error {
	ran(pathDeleteCenterNode)
	left, center, right := l.n, c.n, r.n
	nrLeft, nrCenter, nrRight := left.nrEntries(), center.nrEntries(), right.nrEntries()
	moved := min(left.maxEntries()-nrLeft, nrCenter)
	copyEntries(left, nrLeft, center, 0, moved)
	left.setNrEntries(nrLeft + moved)
	if rest := nrCenter - moved; rest > 0 {
		right.shiftUp(rest)
		copyEntries(right, 0, center, moved, rest)
		right.setNrEntries(nrRight + rest)
	}
	parent.setKey(r.index, right.key(0))
	parent.deleteAt(c.index)
	r.index--
	if err := info.TM.Dec(c.blk.Location()); err != nil {
		return err
	}
	return rebalance2Nodes(info, parent, l, r)
}

func redistribute3Remove(parent node, l, c, r *child) {
	ran(pathRedistribute3)
	left, center, right := l.n, c.n, r.n
	nrLeft, nrCenter, nrRight := left.nrEntries(), center.nrEntries(), right.nrEntries()
	total := nrLeft + nrCenter + nrRight
	targetRight := total / 3
	remainder := 0
	if targetRight*3 != total {
		remainder = 1
	}
	targetLeft := targetRight + remainder
	if nrLeft < nrRight {
		s := nrLeft - targetLeft
		if s < 0 && nrCenter < -s {
			// Not enough in the centre.
			shiftEntries(left, center, -nrCenter)
			s += nrCenter
			shiftEntries(left, right, s)
			nrRight += s
		} else {
			shiftEntries(left, center, s)
		}
		shiftEntries(center, right, targetRight-nrRight)
	} else {
		s := targetRight - nrRight
		if s > 0 && nrCenter < s {
			shiftEntries(center, right, nrCenter)
			s -= nrCenter
			shiftEntries(left, right, s)
			nrLeft -= s
		} else {
			shiftEntries(center, right, s)
		}
		shiftEntries(left, center, nrLeft-targetLeft)
	}
	parent.setKey(c.index, center.key(0))
	parent.setKey(r.index, right.key(0))
}

func rebalance3(s *shadowSpine, vt *ValueType, leftIndex int) error {
	ran(pathRebalance3)
	info := s.info
	parent := node(s.current().Data())
	l, err := initChild(info, vt, parent, leftIndex)
	if err != nil {
		return err
	}
	defer info.TM.Unlock(l.blk)
	c, err := initChild(info, vt, parent, leftIndex+1)
	if err != nil {
		return err
	}
	defer info.TM.Unlock(c.blk)
	r, err := initChild(info, vt, parent, leftIndex+2)
	if err != nil {
		return err
	}
	defer info.TM.Unlock(r.blk)
	if l.n.maxEntries() != c.n.maxEntries() || c.n.maxEntries() != r.n.maxEntries() {
		return &NodeError{Block: c.blk.Location(), Reason: "siblings differ in max_entries"}
	}
	total := l.n.nrEntries() + c.n.nrEntries() + r.n.nrEntries()
	if total < 4*mergeThreshold(l.n)+1 {
		return deleteCenterNode(info, parent, &l, &c, &r)
	}
	redistribute3Remove(parent, &l, &c, &r)
	return nil
}

// rebalanceChildren makes sure the child of the current node that key
// leads to holds more than the minimum before the walk steps into it.
func rebalanceChildren(s *shadowSpine, vt *ValueType, key uint64) error {
	info := s.info
	n := node(s.current().Data())
	if n.nrEntries() == 1 {
		// [A] A root with one child: pull the child up into the root.
		// If a snapshot shares the child, the child keeps pointing at
		// its entries too, so they gain a referrer (the kernel misses
		// this and undercounts them).
		ran(pathPullUpRoot)
		childLoc := n.value64(0)
		shared, err := info.TM.IsShared(childLoc)
		if err != nil {
			return err
		}
		blk, err := info.TM.ReadLock(childLoc, NodeValidator)
		if err != nil {
			return err
		}
		if err := checkValueSize(node(blk.Data()), childLoc, vt.Size); err != nil {
			info.TM.Unlock(blk)
			return err
		}
		copy(n, blk.Data())
		info.TM.Unlock(blk)
		if shared {
			if err := info.incChildren(n, vt); err != nil {
				return err
			}
		}
		return info.TM.Dec(childLoc)
	}
	i := n.lowerBound(key)
	if i < 0 {
		return ErrNotFound
	}
	hasLeft := i > 0
	hasRight := i < n.nrEntries()-1
	switch {
	case !hasLeft:
		return rebalance2(s, vt, i)
	case !hasRight:
		return rebalance2(s, vt, i-1)
	default:
		return rebalance3(s, vt, i-1)
	}
}

func doLeaf(n node, key uint64) (int, error) {
	i := n.lowerBound(key)
	if i < 0 || i >= n.nrEntries() || n.key(i) != key {
		return 0, ErrNotFound
	}
	return i, nil
}

// removeRaw walks one level down to the leaf holding key, shadowing and
// rebalancing on the way, and returns key's index in that leaf.
func removeRaw(s *shadowSpine, vt *ValueType, root, key uint64, parentIndex int) (int, error) {
	i := parentIndex
	for {
		if err := s.step(root, vt); err != nil {
			return 0, err
		}
		s.patchParent(i)
		n := node(s.current().Data())
		if n.isLeaf() {
			return doLeaf(n, key)
		}
		if err := rebalanceChildren(s, vt, key); err != nil {
			return 0, err
		}
		n = node(s.current().Data())
		if n.isLeaf() {
			return doLeaf(n, key)
		}
		i = n.lowerBound(key)
		root = n.value64(i)
	}
}

// Remove deletes keys from the tree, Dec'ing its value, and returns the
// new root. ErrNotFound if the key is absent (the tree is then unchanged
// in content, though nodes on the path may have been shadowed).
func Remove(info *Info, root uint64, keys []uint64) (newRoot uint64, err error) {
	if invariants.Enabled {
		defer func() { // runs after the spine's locks are dropped
			if err == nil {
				assertPath(info, newRoot, keys, "remove")
			}
		}()
	}
	s := shadowSpine{info: info}
	defer s.exit()
	last := info.Levels - 1
	index := -1
	le64 := info.le64Type()
	for level := 0; level < info.Levels; level++ {
		vt := le64
		if level == last {
			vt = &info.Value
		}
		var err error
		index, err = removeRaw(&s, vt, root, keys[level], index)
		if err != nil {
			return s.rootOr(root), err
		}
		n := node(s.current().Data())
		if level != last {
			root = n.value64(index)
			continue
		}
		if info.Value.Dec != nil {
			if err := info.Value.Dec(n.value(index), 1); err != nil {
				return s.root, err
			}
		}
		n.deleteAt(index)
	}
	return s.root, nil
}

// rootOr returns the spine's root if the walk shadowed one (block 0 is the
// superblock, never a root), else fallback.
func (s *shadowSpine) rootOr(fallback uint64) uint64 {
	if s.root != 0 {
		return s.root
	}
	return fallback
}

// RemoveRange deletes every key k with begin <= k < end from the
// last-level tree selected by keys[:last], Dec'ing the values. It returns
// the new root and the number of entries removed. Like the kernel's
// __remove_range, it finds each mapped key with LookupNext, so holes in
// the range cost nothing.
func RemoveRange(info *Info, root uint64, keys []uint64, begin, end uint64) (uint64, uint64, error) {
	var removed uint64
	last := info.Levels - 1
	k := make([]uint64, info.Levels)
	copy(k, keys[:last])
	value := make([]byte, info.Value.Size)
	for begin < end {
		k[last] = begin
		next, err := LookupNext(info, root, k, value)
		if err == ErrNotFound || (err == nil && next >= end) {
			break
		}
		if err != nil {
			return root, removed, err
		}
		k[last] = next
		if root, err = Remove(info, root, k); err != nil {
			return root, removed, err
		}
		removed++
		if next == ^uint64(0) {
			break
		}
		begin = next + 1
	}
	return root, removed, nil
}
