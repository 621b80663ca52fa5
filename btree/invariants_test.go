package btree

import (
	"strings"
	"testing"

	"github.com/thind-storage/thind/internal/invariants"
)

// In invariants builds a change that leaves a node out of order panics at
// once; in other builds the check costs nothing and does not run. The
// leaf is put out of order behind the tree's back, as a bug in a split
// or a shift would.
func TestInvariantsCatchAnUnorderedLeaf(t *testing.T) {
	f := newFixture(t, 1, 64)
	root, err := Empty(f.info)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []uint64{10, 20, 30} {
		if root, _, err = Insert(f.info, root, []uint64{k}, LE64(k)); err != nil {
			t.Fatal(err)
		}
	}
	blk, _, err := f.tm.Shadow(root, NodeValidator)
	if err != nil {
		t.Fatal(err)
	}
	n := node(blk.Data())
	n.setKey(0, 25) // keys now 25, 20, 30
	f.tm.Unlock(blk)

	defer func() {
		r := recover()
		switch {
		case !invariants.Enabled && r != nil:
			t.Fatalf("a build without invariants panicked: %v", r)
		case invariants.Enabled && (r == nil || !strings.Contains(r.(string), "not above key")):
			t.Fatalf("invariants build: recovered %v, want the ordering violation", r)
		}
	}()
	if _, _, err := Insert(f.info, blk.Location(), []uint64{40}, LE64(40)); err != nil {
		t.Fatal(err)
	}
}
