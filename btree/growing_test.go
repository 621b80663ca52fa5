package btree

import (
	"maps"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
)

// TestGrowingTreeReachesEveryPath is the model test's growing preset: it
// grows one tree past depth 3 with random inserts (and some removes, and
// a snapshot sharing it), then shrinks it back to a few keys, checking it
// against a map and every reference count at each phase's end. The path
// counters prove that every split, rebalance and redistribution of insert
// and remove ran, which a tree of two leaves never does.
func TestGrowingTreeReachesEveryPath(t *testing.T) {
	rng := randtest.New(t)
	f := newFixture(t, 1, 1<<16)
	before := pathCounts()

	root, err := Empty(f.info)
	if err != nil {
		t.Fatal(err)
	}
	model := map[uint64]uint64{}
	var keys []uint64 // the model's keys, in no order, for picking one
	var snap uint64   // a second root sharing the tree, once taken
	var snapModel map[uint64]uint64
	nextValue := uint64(1)
	commit := func() {
		f.sm.Commit()
		f.tm.Commit(mustSuperblock(t, f.tm))
	}
	insert := func(k uint64) {
		v := nextValue
		nextValue++
		f.refs[v]++
		if root, _, err = Insert(f.info, root, []uint64{k}, LE64(v)); err != nil {
			t.Fatalf("insert %d: %v", k, err)
		}
		if _, ok := model[k]; !ok {
			keys = append(keys, k)
		}
		model[k] = v
	}
	remove := func(i int) {
		k := keys[i]
		if root, err = Remove(f.info, root, []uint64{k}); err != nil {
			t.Fatalf("remove %d: %v", k, err)
		}
		delete(model, k)
		keys[i] = keys[len(keys)-1]
		keys = keys[:len(keys)-1]
	}
	verify := func(phase string) {
		t.Helper()
		if got := f.contents(root); !sameKeys(got, model) {
			t.Fatalf("%s: tree has %d entries, model %d", phase, len(got), len(model))
		}
		roots := []uint64{root}
		if snap != 0 {
			roots = append(roots, snap)
			if got := f.contents(snap); !sameKeys(got, snapModel) {
				t.Fatalf("%s: snapshot has %d entries, model %d", phase, len(got), len(snapModel))
			}
		}
		f.check(roots)
	}

	// Grow: random keys, so that leaves fill in the middle and split two
	// into three, with a removal now and then.
	for batch := 0; depth(t, f, root) < 3; batch++ {
		if batch > 100 {
			t.Fatalf("no depth 3 after %d keys", len(model))
		}
		for range 2000 {
			if rng.IntN(10) == 0 && len(keys) > 0 {
				remove(rng.IntN(len(keys)))
			} else {
				insert(rng.Uint64N(1 << 24))
			}
		}
		if batch == 10 && snap == 0 {
			// Share the tree: from here a node's siblings may be
			// shared, and removes shadow shared nodes.
			if err := f.tm.Inc(root); err != nil {
				t.Fatal(err)
			}
			snap, snapModel = root, maps.Clone(model)
		}
		commit()
	}
	t.Logf("depth %d at %d keys", depth(t, f, root), len(model))
	verify("grown")

	// Shrink: remove in random order down to a few keys, with the
	// snapshot dropped half way, so both shared and unshared nodes are
	// merged and redistributed, and the root is pulled up level by level.
	half := len(keys) / 2
	for len(keys) > 20 {
		remove(rng.IntN(len(keys)))
		if len(keys) == half && snap != 0 {
			verify("half shrunk")
			if err := Del(f.info, snap); err != nil {
				t.Fatal(err)
			}
			snap, snapModel = 0, nil
		}
		if len(keys)%2000 == 0 {
			commit()
		}
	}
	if d := depth(t, f, root); d != 1 {
		t.Errorf("a tree of %d keys has depth %d, want 1 (the root pulled up)", len(keys), d)
	}
	verify("shrunk")

	after := pathCounts()
	for p := range nPaths {
		n := after[p] - before[p]
		t.Logf("%-18s %d", pathNames[p], n)
		if n == 0 {
			t.Errorf("path %s never ran", pathNames[p])
		}
	}
}

func pathCounts() (c [nPaths]uint64) {
	for p := range nPaths {
		c[p] = pathRuns[p].Load()
	}
	return c
}

// sameKeys reports whether a one-level tree's contents equal the model.
func sameKeys(got map[[2]uint64]uint64, want map[uint64]uint64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range got {
		if w, ok := want[k[0]]; !ok || w != v {
			return false
		}
	}
	return true
}

// depth counts the nodes from root to its leftmost leaf.
func depth(t *testing.T, f *fixture, root uint64) int {
	t.Helper()
	d := 0
	for b := root; ; d++ {
		blk, err := f.tm.ReadLock(b, NodeValidator)
		if err != nil {
			t.Fatal(err)
		}
		n := node(blk.Data())
		leaf, next := n.isLeaf(), n.value64(0)
		f.tm.Unlock(blk)
		if leaf {
			return d + 1
		}
		b = next
	}
}
