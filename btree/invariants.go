package btree

import (
	"github.com/thind-storage/thind/internal/invariants"
)

// assertPath checks, in invariants builds, every node on the path from
// root to keys after a change: a valid header, keys strictly increasing,
// each within the range its parent entry gives it, no empty internal node,
// and leaves at the expected value size.
// It costs a read of depth nodes per level, so it can run after every
// insert and remove. The path ends where keys is absent (after a remove).
func assertPath(info *Info, root uint64, keys []uint64, op string) {
	b := root
	for level := 0; level < info.Levels; level++ {
		leafSize := 8
		if level == info.Levels-1 {
			leafSize = info.Value.Size
		}
		lo, hi, bounded := uint64(0), uint64(0), false
		for depth := 0; ; depth++ {
			if depth > MaxDepth {
				invariants.Violation("btree %s of %v: path from root %d deeper than %d", op, keys, root, MaxDepth)
			}
			blk, n, err := readNode(info.TM, b, leafSize)
			if err != nil {
				invariants.Violation("btree %s of %v: node %d: %v", op, keys, b, err)
			}
			if err := checkNode(n, b); err != nil {
				invariants.Violation("btree %s of %v: %v", op, keys, err)
			}
			nr := n.nrEntries()
			for i := 0; i < nr; i++ {
				k := n.key(i)
				switch {
				case i > 0 && k <= n.key(i-1):
					invariants.Violation("btree %s of %v: node %d: key %d at %d not above key %d", op, keys, b, k, i, n.key(i-1))
				case depth > 0 && k < lo:
					invariants.Violation("btree %s of %v: node %d: key %d below its parent entry's %d", op, keys, b, k, lo)
				case bounded && k >= hi:
					invariants.Violation("btree %s of %v: node %d: key %d not below the next parent entry's %d", op, keys, b, k, hi)
				}
			}
			if n.isInternal() && nr == 0 {
				invariants.Violation("btree %s of %v: internal node %d is empty", op, keys, b)
			}
			i := n.lowerBound(keys[level])
			if n.isLeaf() {
				found := i >= 0 && i < nr && n.key(i) == keys[level]
				var next uint64
				if found && level < info.Levels-1 {
					next = n.value64(i)
				}
				info.TM.Unlock(blk)
				if !found {
					if op == "insert" {
						invariants.Violation("btree insert of %v: key %d missing from leaf %d", keys, keys[level], b)
					}
					return
				}
				b = next
				break
			}
			if i < 0 {
				info.TM.Unlock(blk)
				return // below every key: nothing of keys here
			}
			lo = n.key(i)
			bounded = i+1 < nr
			if bounded {
				hi = n.key(i + 1)
			}
			b = n.value64(i)
			info.TM.Unlock(blk)
		}
	}
}
