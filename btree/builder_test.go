package btree

import (
	"fmt"
	"testing"

	"github.com/thind-storage/thind/bm"
)

// fixtureWriter is a BlockWriter over a fixture's transaction manager: it
// allocates from the space map, so the fixture's reference check counts
// the built nodes.
type fixtureWriter struct{ f *fixture }

func (w fixtureWriter) Alloc() (uint64, error) { return w.f.sm.NewBlock() }

func (w fixtureWriter) Write(b uint64, data []byte, v bm.Validator) error {
	blk, err := w.f.tm.BM().WriteLockZero(b, v)
	if err != nil {
		return err
	}
	copy(blk.Data(), data)
	w.f.tm.Unlock(blk)
	return nil
}

// TestBuilderBuildsAValidTree builds trees bottom-up at the sizes where
// levels appear and last nodes need evening out, and checks each holds
// its entries, passes the structural and reference-count checks (which
// include the minimum fill) and can then be changed like any other tree.
func TestBuilderBuildsAValidTree(t *testing.T) {
	max := CalcMaxEntries(8)
	for _, n := range []int{0, 1, max - 1, max, max + 1, max + max/3 - 1, 2 * max, max*max + 7, 20000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := newFixture(t, 1, 1<<14)
			b := NewBuilder(fixtureWriter{f}, 8)
			want := map[[2]uint64]uint64{}
			for k := range uint64(n) {
				v := 1000 + k
				f.refs[v]++
				if err := b.Add(3*k, LE64(v)); err != nil {
					t.Fatal(err)
				}
				want[[2]uint64{3 * k}] = v
			}
			root, err := b.Finish()
			if err != nil {
				t.Fatal(err)
			}
			if got := f.contents(root); len(got) != len(want) {
				t.Fatalf("built tree holds %d entries, want %d", len(got), len(want))
			}
			f.check([]uint64{root})
			f.refs[1]++
			if root, _, err = Insert(f.info, root, []uint64{1}, LE64(1)); err != nil {
				t.Fatalf("insert into a built tree: %v", err)
			}
			want[[2]uint64{1}] = 1
			got := f.contents(root)
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("key %d: %d, want %d", k[0], got[k], v)
				}
			}
			f.check([]uint64{root})
		})
	}
}
