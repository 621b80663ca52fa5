package btree

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/tm"
)

// coreSM is a reference-counting space map held in a Go map: the oracle
// the on-disk space maps are tested against elsewhere, and all a B-tree
// needs here.
type coreSM struct {
	counts    map[uint64]uint32
	committed map[uint64]uint32
	nrBlocks  uint64
	begin     uint64
}

func newCoreSM(nr uint64) *coreSM {
	return &coreSM{counts: map[uint64]uint32{0: 1}, committed: map[uint64]uint32{0: 1}, nrBlocks: nr}
}

func (s *coreSM) NewBlock() (uint64, error) {
	for i := uint64(0); i < s.nrBlocks; i++ {
		b := (s.begin + i) % s.nrBlocks
		if s.counts[b] == 0 && s.committed[b] == 0 {
			s.counts[b] = 1
			s.begin = b + 1
			return b, nil
		}
	}
	return 0, errors.New("core sm: no space")
}

func (s *coreSM) Inc(b uint64) error { s.counts[b]++; return nil }
func (s *coreSM) Dec(b uint64) error {
	if s.counts[b] == 0 {
		return fmt.Errorf("dec of free block %d", b)
	}
	s.counts[b]--
	if s.counts[b] == 0 {
		delete(s.counts, b)
	}
	return nil
}
func (s *coreSM) Count(b uint64) (uint32, error)            { return s.counts[b], nil }
func (s *coreSM) CountIsMoreThanOne(b uint64) (bool, error) { return s.counts[b] > 1, nil }
func (s *coreSM) Commit() error {
	s.committed = maps.Clone(s.counts)
	s.begin = 0
	return nil
}

// dataRefs counts references to "data blocks" held in leaf values, as the
// thin mapping tree's value type does.
type dataRefs map[uint64]int

func (d dataRefs) valueType() ValueType {
	return ValueType{
		Size: 8,
		Inc: func(v []byte, n int) error {
			for i := 0; i < n; i++ {
				d[binary.LittleEndian.Uint64(v[8*i:])]++
			}
			return nil
		},
		Dec: func(v []byte, n int) error {
			for i := 0; i < n; i++ {
				k := binary.LittleEndian.Uint64(v[8*i:])
				if d[k] == 0 {
					return fmt.Errorf("value %d dec below zero", k)
				}
				d[k]--
			}
			return nil
		},
		Equal: func(a, b []byte) bool { return binary.LittleEndian.Uint64(a) == binary.LittleEndian.Uint64(b) },
	}
}

type fixture struct {
	t    *testing.T
	sm   *coreSM
	tm   *tm.Manager
	info *Info
	refs dataRefs
}

func newFixture(t *testing.T, levels int, blocks uint64) *fixture {
	dev := bm.NewMemDevice(int64(blocks) * bm.BlockSize)
	b := bm.New(dev, blocks, bm.Options{CacheBytes: 1 << 20})
	sm := newCoreSM(blocks)
	f := &fixture{t: t, sm: sm, tm: tm.New(b, sm), refs: dataRefs{}}
	f.info = &Info{TM: f.tm, Levels: levels, Value: f.refs.valueType()}
	return f
}

// check verifies the structural rules of thin_check for every tree, and
// that every metadata block's count equals the number of references to it
// from the roots and the nodes, and every value's count the number of
// distinct leaves holding it.
func (f *fixture) check(roots []uint64) {
	f.t.Helper()
	want := map[uint64]uint32{0: 1}
	values := map[uint64]int{}
	seen := map[uint64]bool{}
	var visit func(b uint64, level int, lo uint64, isRoot bool) error
	visit = func(b uint64, level int, lo uint64, isRoot bool) error {
		want[b]++
		if seen[b] {
			return nil
		}
		seen[b] = true
		blk, err := f.tm.ReadLock(b, NodeValidator)
		if err != nil {
			return err
		}
		defer f.tm.Unlock(blk)
		n := node(blk.Data())
		nr := n.nrEntries()
		if !isRoot && nr < n.maxEntries()/3 {
			return fmt.Errorf("node %d underfull: %d of %d", b, nr, n.maxEntries())
		}
		for i := 0; i < nr; i++ {
			k := n.key(i)
			if i == 0 && k < lo {
				return fmt.Errorf("node %d: first key %d below parent key %d", b, k, lo)
			}
			if i > 0 && k <= n.key(i-1) {
				return fmt.Errorf("node %d: keys out of order at %d", b, i)
			}
			switch {
			case n.isInternal():
				if err := visit(n.value64(i), level, k, false); err != nil {
					return err
				}
			case level < f.info.Levels-1:
				if err := visit(n.value64(i), level+1, 0, true); err != nil {
					return err
				}
			default:
				values[n.value64(i)]++
			}
		}
		return nil
	}
	for _, r := range roots {
		if err := visit(r, 0, 0, true); err != nil {
			f.t.Fatal(err)
		}
	}
	for b, c := range f.sm.counts {
		if want[b] != c {
			f.t.Fatalf("block %d: count %d, referenced %d times", b, c, want[b])
		}
	}
	for b, c := range want {
		if f.sm.counts[b] != c {
			f.t.Fatalf("block %d: referenced %d times, count %d", b, c, f.sm.counts[b])
		}
	}
	for v, c := range f.refs {
		if values[v] != c {
			f.t.Fatalf("value %d: count %d, held by %d leaves", v, c, values[v])
		}
	}
	if n := f.tm.BM().LockedBlocks(); n != 0 {
		f.t.Fatalf("%d blocks left locked", n)
	}
}

func (f *fixture) contents(root uint64) map[[2]uint64]uint64 {
	f.t.Helper()
	got := map[[2]uint64]uint64{}
	err := Walk(f.info, root, func(keys []uint64, v []byte) error {
		var k [2]uint64
		copy(k[:], keys)
		got[k] = binary.LittleEndian.Uint64(v)
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return got
}

func TestEmptyTreeLookupFails(t *testing.T) {
	f := newFixture(t, 1, 64)
	root, err := Empty(f.info)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]byte, 8)
	if err := Lookup(f.info, root, []uint64{7}, v); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v", err)
	}
	if _, err := LookupNext(f.info, root, []uint64{0}, v); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v", err)
	}
	if _, ok, err := FindHighestKey(f.info, root); ok || err != nil {
		t.Fatalf("highest of empty tree: %v %v", ok, err)
	}
}

func TestAscendingInsertsFillLeavesLikeLinux61(t *testing.T) {
	// kernel-deep's untouched snapshots hold 4800 ascending inserts in
	// leaves of 18 x 248, then 126 and 210 (thin_dump of
	// testdata/dm-thin/kernel-deep.meta.gz, made by
	// testdata/dm-thin/make-kernel-pools.sh on Linux 6.1).
	f := newFixture(t, 1, 4096)
	root, _ := Empty(f.info)
	for k := uint64(0); k < 4800; k++ {
		var err error
		f.refs[k+1000]++
		if root, _, err = Insert(f.info, root, []uint64{k}, LE64(k+1000)); err != nil {
			t.Fatal(err)
		}
	}
	var leaves []int
	var collect func(b uint64)
	collect = func(b uint64) {
		blk, _ := f.tm.ReadLock(b, NodeValidator)
		n := node(blk.Data())
		for i := 0; i < n.nrEntries(); i++ {
			if n.isInternal() {
				collect(n.value64(i))
			}
		}
		if n.isLeaf() {
			leaves = append(leaves, n.nrEntries())
		}
		f.tm.Unlock(blk)
	}
	collect(root)
	want := append(slices.Repeat([]int{248}, 18), 126, 210)
	if !slices.Equal(leaves, want) {
		t.Fatalf("leaf sizes %v, want %v", leaves, want)
	}
	f.check([]uint64{root})
}

// TestRandomOpsMatchAMap is the model test: random inserts, overwrites,
// removes, range removes and snapshots (shared roots) against Go maps,
// checking every reference count after each round.
func TestRandomOpsMatchAMap(t *testing.T) {
	for _, levels := range []int{1, 2} {
		t.Run(fmt.Sprintf("levels=%d", levels), func(t *testing.T) {
			randtest.Each(t, 4, func(t *testing.T, seed uint64) {
				randomOps(t, levels, seed, 12, 1500)
			})
		})
	}
}

func randomOps(t *testing.T, levels int, seed uint64, rounds, opsPerRound int) {
	rng := randtest.FromSeed(seed)
	f := newFixture(t, levels, 1<<15)
	type tree struct {
		root  uint64
		model map[[2]uint64]uint64
	}
	first, _ := Empty(f.info)
	trees := []*tree{{root: first, model: map[[2]uint64]uint64{}}}
	keySpace := uint64(3000)
	mk := func() [2]uint64 {
		if levels == 1 {
			return [2]uint64{rng.Uint64N(keySpace)}
		}
		return [2]uint64{rng.Uint64N(5), rng.Uint64N(keySpace)}
	}
	nextValue := uint64(1)
	for round := 0; round < rounds; round++ {
		for op := 0; op < opsPerRound; op++ {
			tr := trees[rng.IntN(len(trees))]
			k := mk()
			keys := k[:levels]
			var err error
			switch p := rng.IntN(100); {
			case p < 60:
				v := nextValue
				nextValue++
				f.refs[v]++
				tr.root, _, err = Insert(f.info, tr.root, keys, LE64(v))
				tr.model[k] = v
			case p < 85:
				tr.root, err = Remove(f.info, tr.root, keys)
				if _, ok := tr.model[k]; !ok {
					if !errors.Is(err, ErrNotFound) {
						t.Fatalf("remove of absent key %v: %v", k, err)
					}
					err = nil
				}
				delete(tr.model, k)
			case p < 90:
				lo := rng.Uint64N(keySpace)
				hi := lo + rng.Uint64N(200)
				var n uint64
				tr.root, n, err = RemoveRange(f.info, tr.root, keys[:levels-1], lo, hi)
				want := uint64(0)
				for mk := range tr.model {
					if (levels == 1 || mk[0] == k[0]) && mk[levels-1] >= lo && mk[levels-1] < hi {
						delete(tr.model, mk)
						want++
					}
				}
				if err == nil && n != want {
					t.Fatalf("remove range [%d,%d) removed %d, want %d", lo, hi, n, want)
				}
				if errors.Is(err, ErrNotFound) && levels == 2 {
					err = nil // no such first-level key
				}
			case p < 92 && len(trees) < 6:
				// A snapshot: a second root sharing the whole tree.
				if err = f.tm.Inc(tr.root); err == nil {
					trees = append(trees, &tree{root: tr.root, model: maps.Clone(tr.model)})
				}
			case p < 94 && len(trees) > 1:
				i := rng.IntN(len(trees))
				err = Del(f.info, trees[i].root)
				trees = slices.Delete(trees, i, i+1)
			default:
				v := make([]byte, 8)
				err = Lookup(f.info, tr.root, keys, v)
				want, ok := tr.model[k]
				if ok != (err == nil) || (ok && binary.LittleEndian.Uint64(v) != want) {
					t.Fatalf("lookup %v: %v %d, model %v %d", k, err, binary.LittleEndian.Uint64(v), ok, want)
				}
				err = nil
			}
			if err != nil {
				t.Fatalf("round %d op %d: %v", round, op, err)
			}
		}
		roots := make([]uint64, len(trees))
		for i, tr := range trees {
			roots[i] = tr.root
			if got := f.contents(tr.root); !maps.Equal(got, tr.model) {
				t.Fatalf("round %d: tree %d has %d entries, model %d", round, i, len(got), len(tr.model))
			}
		}
		f.check(roots)
		f.sm.Commit()
		f.tm.Commit(mustSuperblock(t, f.tm))
	}
}

func mustSuperblock(t *testing.T, m *tm.Manager) bm.Block {
	t.Helper()
	b, err := m.BM().WriteLockZero(0, bm.NoValidator)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLookupNextAndWalkRange(t *testing.T) {
	f := newFixture(t, 1, 4096)
	root, _ := Empty(f.info)
	var keys []uint64
	for k := uint64(10); k < 20000; k += 7 {
		keys = append(keys, k)
		f.refs[k]++
		root, _, _ = Insert(f.info, root, []uint64{k}, LE64(k))
	}
	v := make([]byte, 8)
	for _, probe := range []uint64{0, 10, 11, 16, 17, 19990, 19999} {
		i, _ := slices.BinarySearch(keys, probe)
		got, err := LookupNext(f.info, root, []uint64{probe}, v)
		if i == len(keys) {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("next after %d: %d %v", probe, got, err)
			}
			continue
		}
		if err != nil || got != keys[i] {
			t.Fatalf("next after %d: %d %v, want %d", probe, got, err, keys[i])
		}
	}
	var seen []uint64
	WalkRange(f.info, root, 1000, 2000, func(k uint64, _ []byte) error {
		seen = append(seen, k)
		return nil
	})
	var want []uint64
	for _, k := range keys {
		if k >= 1000 && k <= 2000 {
			want = append(want, k)
		}
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("walk range: %d keys, want %d", len(seen), len(want))
	}
}
