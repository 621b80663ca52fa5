package btree

import (
	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/invariants"
)

// spaceThreshold is the least free space a sibling needs before entries
// are moved into it rather than splitting (SPACE_THRESHOLD).
const spaceThreshold = 8

// Insert stores value at keys (one per level), creating lower-level trees
// as needed, and returns the new root. inserted is false when the key
// existed and its value was replaced; a replaced value is Dec'd unless
// Equal says it is the same. The caller owns the reference the new value
// carries: Insert does not Inc it.
func Insert(info *Info, root uint64, keys []uint64, value []byte) (newRoot uint64, inserted bool, err error) {
	if invariants.Enabled {
		defer func() { // runs after the spine's locks are dropped
			if err == nil {
				assertPath(info, newRoot, keys, "insert")
			}
		}()
	}
	s := shadowSpine{info: info}
	defer s.exit()
	// On error the tree may be half shadowed: the transaction must be
	// aborted, as the kernel does after any failed metadata operation.
	index := -1
	block := root
	last := info.Levels - 1
	le64 := info.le64Type()
	for level := 0; level < last; level++ {
		if index, err = insertRaw(&s, block, le64, keys[level], index); err != nil {
			return 0, false, err
		}
		n := node(s.current().Data())
		if needInsert(n, keys[level], index) {
			sub, err := Empty(&Info{TM: info.TM, Levels: 1, Value: info.Value})
			if err != nil {
				return 0, false, err
			}
			var v [8]byte
			putLE64(v[:], sub)
			if err := n.insertAt(index, keys[level], v[:]); err != nil {
				return 0, false, err
			}
		}
		block = n.value64(index)
	}
	if index, err = insertRaw(&s, block, &info.Value, keys[last], index); err != nil {
		return 0, false, err
	}
	n := node(s.current().Data())
	if needInsert(n, keys[last], index) {
		if err := n.insertAt(index, keys[last], value); err != nil {
			return 0, false, err
		}
		return s.root, true, nil
	}
	old := n.value(index)
	vt := &info.Value
	if vt.Dec != nil && (vt.Equal == nil || !vt.Equal(old, value)) {
		if err := vt.Dec(old, 1); err != nil {
			return 0, false, err
		}
	}
	copy(old, value)
	return s.root, false, nil
}

func needInsert(n node, key uint64, index int) bool {
	return index >= n.nrEntries() || n.key(index) != key
}

// insertRaw walks one level down to the leaf for key, shadowing every node
// and making room on the way so that the leaf can take one more entry. It
// returns the index in the leaf where key is or should go. parentIndex is
// the entry of the spine's current node that points at block (-1 at the
// very top).
func insertRaw(s *shadowSpine, block uint64, vt *ValueType, key uint64, parentIndex int) (int, error) {
	i := parentIndex
	top := true
	for {
		if err := s.step(block, vt); err != nil {
			return 0, err
		}
		s.patchParent(i)
		n := node(s.current().Data())
		if !hasSpaceForInsert(n, key) {
			var err error
			if top {
				err = splitBeneath(s, vt)
			} else {
				err = rebalanceOrSplit(s, vt, i, key)
			}
			if err != nil {
				return 0, err
			}
			n = node(s.current().Data())
		}
		i = n.lowerBound(key)
		if n.isLeaf() {
			break
		}
		if i < 0 {
			// The key is below every key here: lower the bound.
			n.setKey(0, key)
			i = 0
		}
		block = n.value64(i)
		top = false
	}
	n := node(s.current().Data())
	if i < 0 || n.key(i) != key {
		i++
	}
	return i, nil
}

// hasSpaceForInsert: a full leaf still takes an overwrite.
func hasSpaceForInsert(n node, key uint64) bool {
	if n.nrEntries() < n.maxEntries() {
		return true
	}
	if n.isLeaf() {
		i := n.lowerBound(key)
		return i >= 0 && n.key(i) == key
	}
	return false
}

// splitBeneath splits the root into two new children, keeping the root's
// block (btree_split_beneath): the root's location never changes on a
// split, so callers holding it need no update.
func splitBeneath(s *shadowSpine, vt *ValueType) error {
	ran(pathSplitBeneath)
	info := s.info
	pn := node(s.current().Data())
	nr := pn.nrEntries()
	nrLeft := nr / 2

	left, err := info.TM.NewBlock(NodeValidator)
	if err != nil {
		return err
	}
	defer info.TM.Unlock(left)
	right, err := info.TM.NewBlock(NodeValidator)
	if err != nil {
		return err
	}
	defer info.TM.Unlock(right)
	ln, rn := node(left.Data()), node(right.Data())
	copyHeader(ln, pn)
	copyHeader(rn, pn)
	copyEntries(ln, 0, pn, 0, nrLeft)
	ln.setNrEntries(nrLeft)
	copyEntries(rn, 0, pn, nrLeft, nr-nrLeft)
	rn.setNrEntries(nr - nrLeft)

	// The root becomes an internal node of two entries; its value array
	// moves since max_entries changes with the value size.
	initNode(pn, InternalNode, 8)
	pn.setNrEntries(2)
	pn.setKey(0, ln.key(0))
	pn.setValue64(0, left.Location())
	pn.setKey(1, rn.key(0))
	pn.setValue64(1, right.Location())
	return nil
}

// shadowChild shadows child index of parent and points parent at the copy.
func shadowChild(info *Info, vt *ValueType, parent node, index int) (bm.Block, error) {
	blk, inc, err := info.TM.Shadow(parent.value64(index), NodeValidator)
	if err != nil {
		return bm.Block{}, err
	}
	if err := checkValueSize(node(blk.Data()), blk.Location(), vt.Size); err != nil {
		info.TM.Unlock(blk)
		return bm.Block{}, err
	}
	if inc {
		if err := info.incChildren(node(blk.Data()), vt); err != nil {
			info.TM.Unlock(blk)
			return bm.Block{}, err
		}
	}
	parent.setValue64(index, blk.Location())
	return blk, nil
}

// redistribute2 evens out two siblings, left taking the smaller half.
func redistribute2(left, right node) {
	nrLeft, nrRight := left.nrEntries(), right.nrEntries()
	total := nrLeft + nrRight
	targetLeft := total / 2
	targetRight := total - targetLeft
	switch {
	case nrLeft < targetLeft:
		delta := targetLeft - nrLeft
		copyEntries(left, nrLeft, right, 0, delta)
		right.shiftDown(delta)
	case nrLeft > targetLeft:
		delta := nrLeft - targetLeft
		if nrRight > 0 {
			right.shiftUp(delta)
		}
		copyEntries(right, 0, left, targetLeft, delta)
	}
	left.setNrEntries(targetLeft)
	right.setNrEntries(targetRight)
}

// redistribute3 spreads two full siblings over three nodes; center starts
// empty.
func redistribute3(left, center, right node) {
	nrLeft, nrRight := left.nrEntries(), right.nrEntries()
	total := nrLeft + nrRight
	targetLeft := total / 3
	targetCenter := (total - targetLeft) / 2
	targetRight := total - targetLeft - targetCenter
	switch {
	case nrLeft < targetLeft:
		leftShort := targetLeft - nrLeft
		copyEntries(left, nrLeft, right, 0, leftShort)
		copyEntries(center, 0, right, leftShort, targetCenter)
		right.shiftDown(nrRight - targetRight)
	case nrLeft < targetLeft+targetCenter:
		leftToCenter := nrLeft - targetLeft
		copyEntries(center, 0, left, targetLeft, leftToCenter)
		copyEntries(center, leftToCenter, right, 0, targetCenter-leftToCenter)
		right.shiftDown(nrRight - targetRight)
	default:
		rightShort := targetRight - nrRight
		right.shiftUp(rightShort)
		copyEntries(right, 0, left, nrLeft-rightShort, rightShort)
		copyEntries(center, 0, left, targetLeft, nrLeft-targetLeft)
	}
	left.setNrEntries(targetLeft)
	center.setNrEntries(targetCenter)
	right.setNrEntries(targetRight)
}

// splitOneIntoTwo moves half of the current node into a new right sibling.
func splitOneIntoTwo(s *shadowSpine, parentIndex int, key uint64) error {
	ran(pathSplitOneIntoTwo)
	info := s.info
	left := s.current()
	right, err := info.TM.NewBlock(NodeValidator)
	if err != nil {
		return err
	}
	ln, rn := node(left.Data()), node(right.Data())
	copyHeader(rn, ln)
	redistribute2(ln, rn)

	pn := node(s.parent().Data())
	var loc [8]byte
	putLE64(loc[:], right.Location())
	if err := pn.insertAt(parentIndex+1, rn.key(0), loc[:]); err != nil {
		info.TM.Unlock(right)
		return err
	}
	if key < rn.key(0) {
		info.TM.Unlock(right)
	} else {
		info.TM.Unlock(left)
		s.setCurrent(right)
	}
	return nil
}

// splitTwoIntoThree spreads the current node and a sibling over three
// nodes, which leaves them fuller than splitting one into two.
func splitTwoIntoThree(s *shadowSpine, vt *ValueType, parentIndex int, key uint64) error {
	ran(pathSplitTwoIntoThree)
	info := s.info
	pn := node(s.parent().Data())
	var left, right bm.Block
	var middleIndex int
	var err error
	if parentIndex == 0 {
		middleIndex = 1
		left = s.current()
		if right, err = shadowChild(info, vt, pn, parentIndex+1); err != nil {
			return err
		}
	} else {
		middleIndex = parentIndex
		right = s.current()
		if left, err = shadowChild(info, vt, pn, parentIndex-1); err != nil {
			return err
		}
	}
	cur := s.current()
	unlockSibling := func(b bm.Block) {
		if b.Location() != cur.Location() {
			info.TM.Unlock(b)
		}
	}
	middle, err := info.TM.NewBlock(NodeValidator)
	if err != nil {
		unlockSibling(left)
		unlockSibling(right)
		return err
	}
	ln, mn, rn := node(left.Data()), node(middle.Data()), node(right.Data())
	copyHeader(mn, ln)
	redistribute3(ln, mn, rn)

	pn.setKey(middleIndex, rn.key(0))
	var loc [8]byte
	putLE64(loc[:], middle.Location())
	if err := pn.insertAt(middleIndex, mn.key(0), loc[:]); err != nil {
		unlockSibling(left)
		info.TM.Unlock(middle)
		unlockSibling(right)
		return err
	}
	// Keep the node that now holds key; release the other two. The
	// current node is released through setCurrent's replacement.
	keep := right
	switch {
	case key < mn.key(0):
		keep = left
	case key < rn.key(0):
		keep = middle
	}
	for _, b := range []bm.Block{left, middle, right} {
		if b.Location() != keep.Location() {
			info.TM.Unlock(b)
		}
	}
	s.setCurrent(keep)
	return nil
}

// rebalanceLeft moves entries from the current node into its left sibling.
func rebalanceLeft(s *shadowSpine, vt *ValueType, parentIndex int, key uint64) error {
	ran(pathRebalanceLeft)
	pn := node(s.parent().Data())
	sib, err := shadowChild(s.info, vt, pn, parentIndex-1)
	if err != nil {
		return err
	}
	left, right := node(sib.Data()), node(s.current().Data())
	redistribute2(left, right)
	pn.setKey(parentIndex, right.key(0))
	if key < right.key(0) {
		s.info.TM.Unlock(s.current())
		s.setCurrent(sib)
	} else {
		s.info.TM.Unlock(sib)
	}
	return nil
}

// rebalanceRight moves entries from the current node into its right sibling.
func rebalanceRight(s *shadowSpine, vt *ValueType, parentIndex int, key uint64) error {
	ran(pathRebalanceRight)
	pn := node(s.parent().Data())
	sib, err := shadowChild(s.info, vt, pn, parentIndex+1)
	if err != nil {
		return err
	}
	left, right := node(s.current().Data()), node(sib.Data())
	redistribute2(left, right)
	pn.setKey(parentIndex+1, right.key(0))
	if key < right.key(0) {
		s.info.TM.Unlock(sib)
	} else {
		s.info.TM.Unlock(s.current())
		s.setCurrent(sib)
	}
	return nil
}

func freeSpace(info *Info, b uint64) (int, error) {
	blk, err := info.TM.ReadLock(b, NodeValidator)
	if err != nil {
		return 0, err
	}
	n := node(blk.Data())
	free := n.maxEntries() - n.nrEntries()
	info.TM.Unlock(blk)
	return free, nil
}

// rebalanceOrSplit makes room in a full non-root node: move entries into an
// unshared sibling with room, else split. Shared siblings are left alone:
// touching them would break sharing and cost more space than it saves.
func rebalanceOrSplit(s *shadowSpine, vt *ValueType, parentIndex int, key uint64) error {
	info := s.info
	pn := node(s.parent().Data())
	nrParent := pn.nrEntries()
	leftShared, rightShared := false, false

	if parentIndex > 0 {
		b := pn.value64(parentIndex - 1)
		shared, err := info.TM.IsShared(b)
		if err != nil {
			return err
		}
		leftShared = shared
		if !shared {
			free, err := freeSpace(info, b)
			if err != nil {
				return err
			}
			if free >= spaceThreshold {
				return rebalanceLeft(s, vt, parentIndex, key)
			}
		}
	}
	if parentIndex < nrParent-1 {
		b := pn.value64(parentIndex + 1)
		shared, err := info.TM.IsShared(b)
		if err != nil {
			return err
		}
		rightShared = shared
		if !shared {
			free, err := freeSpace(info, b)
			if err != nil {
				return err
			}
			if free >= spaceThreshold {
				return rebalanceRight(s, vt, parentIndex, key)
			}
		}
	}
	// Ascending or descending insert runs split better one into two.
	if leftShared || rightShared || nrParent <= 2 || parentIndex == 0 || parentIndex+1 == nrParent {
		return splitOneIntoTwo(s, parentIndex, key)
	}
	return splitTwoIntoThree(s, vt, parentIndex, key)
}
