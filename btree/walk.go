package btree

import "errors"

// ErrStop ends a walk early without an error.
var ErrStop = errors.New("btree: stop walk")

// Walk calls fn for every entry of a tree in key order, with one key per
// level. fn must not keep keys or value; returning ErrStop ends the walk.
func Walk(info *Info, root uint64, fn func(keys []uint64, value []byte) error) error {
	keys := make([]uint64, info.Levels)
	err := walk(info, root, 0, 0, keys, 0, ^uint64(0), fn)
	if err == ErrStop {
		return nil
	}
	return err
}

// WalkRange calls fn for every entry of a single-level tree whose key k
// satisfies begin <= k <= last, in key order.
func WalkRange(info *Info, root, begin, last uint64, fn func(key uint64, value []byte) error) error {
	keys := make([]uint64, 1)
	err := walk(info, root, 0, 0, keys, begin, last, func(k []uint64, v []byte) error {
		return fn(k[0], v)
	})
	if err == ErrStop {
		return nil
	}
	return err
}

func walk(info *Info, b uint64, level, depth int, keys []uint64, begin, last uint64, fn func([]uint64, []byte) error) error {
	if depth > MaxDepth*info.Levels {
		return &NodeError{Block: b, Reason: "tree deeper than any valid tree (cycle?)"}
	}
	leafSize := 8
	lastLevel := level == info.Levels-1
	if lastLevel {
		leafSize = info.Value.Size
	}
	blk, n, err := readNode(info.TM, b, leafSize)
	if err != nil {
		return err
	}
	defer info.TM.Unlock(blk)
	nr := n.nrEntries()
	// Range limits apply to the last level only (single-level trees).
	start := 0
	if lastLevel && begin > 0 {
		start = max(n.lowerBound(begin), 0)
	}
	for i := start; i < nr; i++ {
		k := n.key(i)
		switch {
		case n.isInternal():
			if lastLevel && i+1 < nr && n.key(i+1) <= begin {
				continue
			}
			if lastLevel && k > last {
				return nil
			}
			if err := walk(info, n.value64(i), level, depth+1, keys, begin, last, fn); err != nil {
				return err
			}
		case !lastLevel:
			keys[level] = k
			if err := walk(info, n.value64(i), level+1, depth+1, keys, begin, last, fn); err != nil {
				return err
			}
		default:
			if k < begin {
				continue
			}
			if k > last {
				return nil
			}
			keys[level] = k
			if err := fn(keys, n.value(i)); err != nil {
				return err
			}
		}
	}
	return nil
}
