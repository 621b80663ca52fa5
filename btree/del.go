package btree

// Del drops the caller's reference to the tree at root (dm_btree_del). A
// node that others still share only loses a reference; an unshared one is
// freed after everything it points at has lost a reference, down to the
// values of the last level, which are Dec'd.
func Del(info *Info, root uint64) error {
	return del(info, root, 0, 0)
}

func del(info *Info, b uint64, level, depth int) error {
	if depth > MaxDepth*info.Levels {
		return &NodeError{Block: b, Reason: "tree deeper than any valid tree (cycle?)"}
	}
	count, err := info.TM.Count(b)
	if err != nil {
		return err
	}
	if count > 1 {
		return info.TM.Dec(b)
	}
	leafSize := 8
	if level == info.Levels-1 {
		leafSize = info.Value.Size
	}
	blk, n, err := readNode(info.TM, b, leafSize)
	if err != nil {
		return err
	}
	defer info.TM.Unlock(blk)
	nr := n.nrEntries()
	switch {
	case n.isInternal():
		for i := 0; i < nr; i++ {
			if err := del(info, n.value64(i), level, depth+1); err != nil {
				return err
			}
		}
	case level < info.Levels-1:
		for i := 0; i < nr; i++ {
			if err := del(info, n.value64(i), level+1, depth+1); err != nil {
				return err
			}
		}
	default:
		if info.Value.Dec != nil && nr > 0 {
			if err := info.Value.Dec(n.values(0, nr), nr); err != nil {
				return err
			}
		}
	}
	return info.TM.Dec(b)
}
