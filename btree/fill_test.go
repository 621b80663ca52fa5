package btree

import "testing"

// TestRemovalsKeepEveryNodeAboveMinimumFill removes the lowest key of a
// two-leaf tree until one leaf is left, checking after every removal that
// no node but the root holds fewer than max_entries/3 entries, the bound
// thin_check enforces. Each removal first rebalances the two leaves; with
// a merge threshold one too low the even split left the leaf the key is
// removed from one short.
func TestRemovalsKeepEveryNodeAboveMinimumFill(t *testing.T) {
	f := newFixture(t, 1, 4096)
	root, _ := Empty(f.info)
	const keys = 374 // two leaves: 248 and 126 (TestAscendingInsertsFillLeavesLikeLinux61)
	for k := uint64(0); k < keys; k++ {
		var err error
		f.refs[k+1000]++
		if root, _, err = Insert(f.info, root, []uint64{k}, LE64(k+1000)); err != nil {
			t.Fatal(err)
		}
	}
	for k := uint64(0); k < keys-1; k++ {
		var err error
		if root, err = Remove(f.info, root, []uint64{k}); err != nil {
			t.Fatalf("remove %d: %v", k, err)
		}
		if err := checkMinimumFill(f, root); err != nil {
			t.Fatalf("after removing key %d: %v", k, err)
		}
	}
	f.check([]uint64{root})
}

func checkMinimumFill(f *fixture, root uint64) error {
	var walk func(b uint64, isRoot bool) error
	walk = func(b uint64, isRoot bool) error {
		blk, err := f.tm.ReadLock(b, NodeValidator)
		if err != nil {
			return err
		}
		defer f.tm.Unlock(blk)
		n := node(blk.Data())
		if !isRoot && n.nrEntries() < n.maxEntries()/3 {
			return &NodeError{Block: b, Reason: "fewer entries than max_entries/3"}
		}
		if n.isInternal() {
			for i := 0; i < n.nrEntries(); i++ {
				if err := walk(n.value64(i), false); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(root, true)
}
