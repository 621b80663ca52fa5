package thinmeta_test

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/btree"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/tm"
)

// modelDelta is the brute-force answer: every virtual block either device
// maps, classified, merged into runs by DeltaTrees's rule.
func modelDelta(left, right map[uint64]uint64, opts thinmeta.DeltaOptions) []thinmeta.DeltaRun {
	keys := map[uint64]bool{}
	for k := range left {
		keys[k] = true
	}
	for k := range right {
		keys[k] = true
	}
	var runs []thinmeta.DeltaRun
	for _, v := range slices.Sorted(maps.Keys(keys)) {
		if v < opts.Begin || (opts.End != 0 && v >= opts.End) {
			continue
		}
		l, inL := left[v]
		r, inR := right[v]
		var kind thinmeta.DeltaKind
		switch {
		case inL && inR && l == r:
			kind = thinmeta.DeltaSame
		case inL && inR:
			kind = thinmeta.DeltaDifferent
		case inL:
			kind, r = thinmeta.DeltaLeftOnly, 0
		default:
			kind, l = thinmeta.DeltaRightOnly, 0
		}
		if kind == thinmeta.DeltaSame && opts.SkipSame {
			continue
		}
		if n := len(runs); n > 0 {
			c := &runs[n-1]
			if c.Kind == kind && c.Begin+c.Len == v &&
				(kind == thinmeta.DeltaRightOnly || c.LeftData+c.Len == l) &&
				(kind == thinmeta.DeltaLeftOnly || c.RightData+c.Len == r) {
				c.Len++
				continue
			}
		}
		runs = append(runs, thinmeta.DeltaRun{Kind: kind, Begin: v, Len: 1, LeftData: l, RightData: r})
	}
	return runs
}

func poolDelta(t *testing.T, p *thinmeta.Pool, l, r uint64, opts thinmeta.DeltaOptions) ([]thinmeta.DeltaRun, thinmeta.DeltaStats) {
	t.Helper()
	var runs []thinmeta.DeltaRun
	st, err := p.Delta(l, r, opts, func(run thinmeta.DeltaRun) error {
		runs = append(runs, run)
		return nil
	})
	if err != nil {
		t.Fatalf("delta %d %d %+v: %v", l, r, opts, err)
	}
	return runs, st
}

// TestDeltaAgainstABruteForceModel compares every pair of devices of
// random pools (snapshots of snapshots, overwrites, discards, deletes,
// unrelated devices, trees split and rebalanced after the snapshot) with
// the model, whole and over random ranges, with and without same runs.
func TestDeltaAgainstABruteForceModel(t *testing.T) {
	randtest.Each(t, 4, func(t *testing.T, seed uint64) {
		h := newHarness(t, seed)
		rng := randtest.FromSeed(seed)
		var pairs, shared uint64
		for round := 0; round < 3; round++ {
			for i := 0; i < 700; i++ {
				h.step()
			}
			ids := slices.Sorted(maps.Keys(h.live))
			for _, l := range ids {
				for _, r := range ids {
					opts := thinmeta.DeltaOptions{SkipSame: rng.IntN(2) == 0, AnyData: rng.IntN(2) == 0}
					if rng.IntN(3) == 0 {
						opts.Begin = rng.Uint64N(3000)
						opts.End = opts.Begin + 1 + rng.Uint64N(1500)
					}
					got, st := poolDelta(t, h.pool, l, r, opts)
					want := modelDelta(h.live[l], h.live[r], opts)
					if opts.AnyData {
						want = noData(byKind(want))
					}
					if !slices.Equal(got, want) {
						t.Fatalf("round %d, delta %d %d %+v:\n got %v\nwant %v", round, l, r, opts, got, want)
					}
					pairs++
					shared += st.SharedSkipped
				}
			}
		}
		h.commit()
		t.Logf("%d pairs compared, %d shared subtrees skipped", pairs, shared)
	})
}

// deltaPool is an origin with n mapped blocks and a snapshot of it.
func deltaPool(t testing.TB, n uint64) *thinmeta.Pool { return deltaPoolWithHole(t, n, -1) }

// deltaPoolWithHole is deltaPool with virtual block hole, if not -1,
// left unmapped.
func deltaPoolWithHole(t testing.TB, n uint64, hole int64) *thinmeta.Pool {
	const nrMeta = 8192
	dev := bm.NewMemDevice(nrMeta * bm.BlockSize)
	p := pooltest.CreateMetadata(t, dev, nrMeta, 128, n+n/10+1000, thinmeta.Options{CacheBytes: 64 << 20})
	if err := p.CreateThin(0); err != nil {
		t.Fatal(err)
	}
	for vb := uint64(0); vb < n; vb++ {
		if int64(vb) != hole {
			insert(t, p, 0, vb)
		}
	}
	if err := p.CreateSnap(1, 0); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	return p
}

func insert(t testing.TB, p *thinmeta.Pool, dev, vb uint64) {
	b, err := p.AllocDataBlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Insert(dev, vb, b); err != nil {
		t.Fatal(err)
	}
}

// TestDeltaCostFollowsTheChanges rewrites a few blocks of an origin after
// a snapshot and checks that comparing the two reads a number of nodes
// bounded by the changes (a path per changed leaf), not by the size.
func TestDeltaCostFollowsTheChanges(t *testing.T) {
	const n = 100000
	p := deltaPool(t, n)
	_, full := poolDelta(t, p, 0, 1, thinmeta.DeltaOptions{})
	rng := randtest.New(t)
	total := 0
	for _, changes := range []int{1, 10, 100} {
		total += changes
		for range changes {
			insert(t, p, 0, rng.Uint64N(n))
		}
		runs, st := poolDelta(t, p, 1, 0, thinmeta.DeltaOptions{SkipSame: true})
		var changed uint64
		for _, r := range runs {
			if r.Kind != thinmeta.DeltaDifferent {
				t.Fatalf("run %+v: only overwrites were made", r)
			}
			changed += r.Len
		}
		if changed == 0 || changed > uint64(total) {
			t.Fatalf("%d blocks differ after %d overwrites", changed, total)
		}
		// Depth 3 for 100k mappings: a changed leaf costs at most its
		// path on each side.
		if limit := uint64(2*4*int(changed) + 8); st.NodesRead > limit {
			t.Fatalf("%d blocks changed: %d nodes read, more than %d", changed, st.NodesRead, limit)
		}
		t.Logf("%d blocks changed: %d nodes read, %d shared subtrees skipped (a full comparison reads %d)", changed, st.NodesRead, st.SharedSkipped, full.NodesRead)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestDeltaAfterRebalance moves the node boundaries of an origin after
// its snapshot (leaves split by inserts between its keys, merged by a
// discard) and checks the comparison against the model, and that it
// still finds the subtrees the two share.
func TestDeltaAfterRebalance(t *testing.T) {
	const nrMeta = 4096
	dev := bm.NewMemDevice(nrMeta * bm.BlockSize)
	p := pooltest.CreateMetadata(t, dev, nrMeta, 128, 40000, thinmeta.Options{})
	m := map[uint64]map[uint64]uint64{0: {}}
	put := func(d, vb uint64) {
		b, err := p.AllocDataBlock()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Insert(d, vb, b); err != nil {
			t.Fatal(err)
		}
		m[d][vb] = b
	}
	if err := p.CreateThin(0); err != nil {
		t.Fatal(err)
	}
	for vb := uint64(0); vb < 40000; vb += 2 {
		put(0, vb)
	}
	if err := p.CreateSnap(1, 0); err != nil {
		t.Fatal(err)
	}
	m[1] = maps.Clone(m[0])
	for vb := uint64(5001); vb < 9000; vb += 2 { // splits, boundaries move
		put(0, vb)
	}
	n, err := p.RemoveRange(0, 20000, 26000) // merges and rebalances
	if err != nil {
		t.Fatal(err)
	}
	for vb := range m[0] {
		if vb >= 20000 && vb < 26000 {
			delete(m[0], vb)
			n--
		}
	}
	if n != 0 {
		t.Fatalf("remove range disagrees with the model by %d", n)
	}
	for _, pair := range [][2]uint64{{0, 1}, {1, 0}} {
		for _, skip := range []bool{false, true} {
			opts := thinmeta.DeltaOptions{SkipSame: skip}
			got, st := poolDelta(t, p, pair[0], pair[1], opts)
			if want := modelDelta(m[pair[0]], m[pair[1]], opts); !slices.Equal(got, want) {
				t.Fatalf("delta %v %+v:\n got %v\nwant %v", pair, opts, got, want)
			}
			if st.SharedSkipped == 0 {
				t.Fatalf("delta %v: no shared subtree found", pair)
			}
			t.Logf("delta %v same=%v: %d runs, %d nodes read, %d shared subtrees skipped", pair, !skip, len(got), st.NodesRead, st.SharedSkipped)
		}
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestDeltaRefusesCorruptTrees points the comparison at blocks that are
// not mapping tree nodes: it stops with an error, never a wrong answer.
func TestDeltaRefusesCorruptTrees(t *testing.T) {
	const nrMeta = 1024
	dev := bm.NewMemDevice(nrMeta * bm.BlockSize)
	p := pooltest.CreateMetadata(t, dev, nrMeta, 128, 1000, thinmeta.Options{})
	if err := p.CreateThin(0); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Delta(0, 7, thinmeta.DeltaOptions{}, func(thinmeta.DeltaRun) error { return nil }); !errors.Is(err, thinmeta.ErrNoDevice) {
		t.Fatalf("delta against a device that does not exist: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	tr := tm.New(bm.New(dev, nrMeta, bm.Options{ReadOnly: true}), nil)
	for _, root := range []uint64{thinmeta.SuperblockLocation, nrMeta + 5} {
		_, err := thinmeta.DeltaTrees(tr, root, root+1, thinmeta.DeltaOptions{}, func(thinmeta.DeltaRun) error {
			t.Fatal("a run from a block that is no node")
			return nil
		})
		if err == nil {
			t.Fatalf("delta of trees at block %d succeeded", root)
		}
		t.Logf("root %d: %v", root, err)
	}
}

// TestDeltaReadOnlyReadsLeavesPastTheCache compares a pool opened
// read-only, whose leaves are read straight from the device (a window of
// blocks at a time), with the same pool open for writing, with and
// without same runs; then a flipped byte in one mapping leaf must stop
// the read-only comparison with a checksum error, not pass unseen.
func TestDeltaReadOnlyReadsLeavesPastTheCache(t *testing.T) {
	const nrMeta, n = 2048, 20000
	dev := bm.NewMemDevice(nrMeta * bm.BlockSize)
	p := pooltest.CreateMetadata(t, dev, nrMeta, 128, 2*n, thinmeta.Options{})
	if err := p.CreateThin(0); err != nil {
		t.Fatal(err)
	}
	for vb := uint64(0); vb < n; vb++ {
		insert(t, p, 0, vb)
	}
	if err := p.CreateSnap(1, 0); err != nil {
		t.Fatal(err)
	}
	for vb := uint64(0); vb < n; vb += 97 {
		insert(t, p, 0, vb)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	ro, err := thinmeta.Open(dev, nrMeta, thinmeta.Options{ReadOnly: true}) //pooltest:a read-only view of the pool made above through pooltest, which checks it
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for _, skip := range []bool{false, true} {
		opts := thinmeta.DeltaOptions{SkipSame: skip}
		want, _ := poolDelta(t, p, 1, 0, opts)
		got, _ := poolDelta(t, ro, 1, 0, opts)
		if !slices.Equal(got, want) || len(got) == 0 {
			t.Fatalf("skip same %v: read-only delta has %d runs, the pool's %d", skip, len(got), len(want))
		}
		// AnyData runs are the same runs merged by kind alone.
		opts.AnyData = true
		for _, pool := range []*thinmeta.Pool{p, ro} {
			anyData, _ := poolDelta(t, pool, 1, 0, opts)
			if w, g := noData(byKind(want)), anyData; !slices.Equal(g, w) {
				t.Fatalf("skip same %v: AnyData runs %v, want %v", skip, g, w)
			}
		}
	}

	// The last mapping leaf on the device (a full-sized leaf of 8-byte
	// values), not the first: the leftmost path is read through the
	// cache.
	buf := make([]byte, bm.BlockSize)
	leaf, last := uint64(0), byte(0)
	for b := uint64(1); b < nrMeta; b++ {
		if _, err := dev.ReadAt(buf, int64(b)*bm.BlockSize); err != nil {
			t.Fatal(err)
		}
		if btree.NodeValidator.Check(buf, b) == nil {
			if nd := btree.ViewNode(buf); nd.IsLeaf() && nd.ValueSize() == 8 && nd.NrEntries() > 100 {
				leaf, last = b, buf[bm.BlockSize-1]
			}
		}
	}
	if leaf == 0 {
		t.Fatal("no mapping leaf found")
	}
	off := int64(leaf)*bm.BlockSize + bm.BlockSize - 1
	orig := []byte{last}
	if _, err := dev.WriteAt([]byte{orig[0] ^ 0xff}, off); err != nil {
		t.Fatal(err)
	}
	ro2, err := thinmeta.Open(dev, nrMeta, thinmeta.Options{ReadOnly: true}) //pooltest:reopened after a byte was flipped on purpose, to see the read fail
	if err != nil {
		t.Fatal(err)
	}
	defer ro2.Close()
	_, err = ro2.Delta(1, 0, thinmeta.DeltaOptions{}, func(thinmeta.DeltaRun) error { return nil })
	var ce *bm.ChecksumError
	if !errors.As(err, &ce) || ce.Block != leaf {
		t.Fatalf("delta over a corrupt leaf %d: %v, want a checksum error naming it", leaf, err)
	}
	if _, err := dev.WriteAt(orig, off); err != nil { // the pool's checker runs at the end
		t.Fatal(err)
	}
}

// noData is runs without their data blocks, as AnyData gives them.
func noData(runs []thinmeta.DeltaRun) []thinmeta.DeltaRun {
	for i := range runs {
		runs[i].LeftData, runs[i].RightData = 0, 0
	}
	return runs
}

// byKind merges runs of a kind that follow each other whatever their
// data blocks, as thin_delta's plain output does, keeping the data blocks
// of each merged run's first.
func byKind(runs []thinmeta.DeltaRun) []thinmeta.DeltaRun {
	var out []thinmeta.DeltaRun
	for _, r := range runs {
		if n := len(out); n > 0 && out[n-1].Kind == r.Kind && out[n-1].Begin+out[n-1].Len == r.Begin {
			out[n-1].Len += r.Len
			continue
		}
		out = append(out, r)
	}
	return out
}

// poolMappings is a device's mappings, virtual block to data block.
func poolMappings(t *testing.T, p *thinmeta.Pool, dev uint64) map[uint64]uint64 {
	t.Helper()
	m := map[uint64]uint64{}
	err := p.WalkMappings(dev, 0, ^uint64(0), func(vb uint64, l thinmeta.Lookup) error {
		m[vb] = l.DataBlock
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDeltaDenseSharedSubtrees checks the plain comparison (AnyData with
// same runs) where the mapped block counts prove the shared subtrees
// have no holes, so that they are not read, and where a hole before the
// snapshot breaks the proof and the comparison goes back to reading
// them: the runs equal the model's either way.
func TestDeltaDenseSharedSubtrees(t *testing.T) {
	const n = 100000
	// A hole only breaks the proof inside a shared subtree: not past the
	// last mapped block, nor in a leaf the rewrites copied.
	for _, c := range []struct {
		hole  int64
		dense bool
	}{{-1, true}, {4000, false}, {60000, false}, {n - 1, true}, {n - 150, true}} {
		hole := c.hole
		p := deltaPoolWithHole(t, n, hole)
		// Two clustered rewrites, the second at the end of the device.
		for vb := uint64(3000); vb < 3300; vb++ {
			insert(t, p, 0, vb)
		}
		for vb := uint64(n - 200); vb < n-100; vb++ {
			insert(t, p, 0, vb)
		}
		opts := thinmeta.DeltaOptions{AnyData: true}
		_, full := poolDelta(t, p, 1, 0, thinmeta.DeltaOptions{})
		for _, pair := range [][2]uint64{{1, 0}, {0, 1}} {
			got, st := poolDelta(t, p, pair[0], pair[1], opts)
			want := noData(byKind(modelDelta(poolMappings(t, p, pair[0]), poolMappings(t, p, pair[1]), thinmeta.DeltaOptions{})))
			if !slices.Equal(got, want) {
				t.Fatalf("hole at %d, delta %v: got %v\nwant %v", hole, pair, got, want)
			}
			dense := st.NodesRead < full.NodesRead/4
			if dense != c.dense {
				t.Fatalf("hole at %d, delta %v: %d nodes read, %d by a full comparison", hole, pair, st.NodesRead, full.NodesRead)
			}
			t.Logf("hole at %d, delta %v: %d runs, %d nodes read (%d by a full comparison)", hole, pair, len(got), st.NodesRead, full.NodesRead)
		}
		if err := p.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}
