package thinpool_test

import (
	"bytes"
	"maps"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/thinpool"
)

// mappings returns a device's virtual block -> data block.
func mappings(t *testing.T, md *thinmeta.Pool, dev uint64) map[uint64]uint64 {
	m := map[uint64]uint64{}
	err := md.WalkMappings(dev, 0, 1<<40, func(v uint64, l thinmeta.Lookup) error {
		m[v] = l.DataBlock
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// modelDiff is Diff's answer from the mappings block by block, and the
// blocks either device maps that it leaves out.
func modelDiff(t *testing.T, md *thinmeta.Pool, base, target, off, end, bs uint64) (diff []thinpool.DiffExtent, clean []uint64) {
	mb, mt := mappings(t, md, base), mappings(t, md, target)
	union := maps.Clone(mb)
	maps.Copy(union, mt)
	for _, v := range slices.Sorted(maps.Keys(union)) {
		if (v+1)*bs <= off || v*bs >= end {
			continue
		}
		db, inB := mb[v]
		dt, inT := mt[v]
		if inB && inT && db == dt {
			clean = append(clean, v)
			continue
		}
		e := thinpool.DiffExtent{Off: max(v*bs, off), Unmapped: inB && !inT}
		e.Len = min((v+1)*bs, end) - e.Off
		if k := len(diff); k > 0 && diff[k-1].Off+diff[k-1].Len == e.Off && diff[k-1].Unmapped == e.Unmapped {
			diff[k-1].Len += e.Len
			continue
		}
		diff = append(diff, e)
	}
	return diff, clean
}

// TestDiffMatchesTheMappingsAndTheData writes, discards and snapshots at
// random, then checks Diff of every pair against the mappings over random
// byte ranges, and that outside its ranges the two devices read alike;
// and Allocated of each device against its mappings.
func TestDiffMatchesTheMappingsAndTheData(t *testing.T) {
	randtest.Each(t, 3, func(t *testing.T, seed uint64) {
		rng := randtest.FromSeed(seed)
		e := newFileEnv(t, 16<<20, 256<<20, thinpool.Config{})
		// Past diffChunk blocks, so that ranges cross its chunks; the
		// writes gather around the first chunk boundary.
		const size = 8 << 30
		bs := e.pool.BlockSize()
		hot := uint64(1<<16) * bs
		ids := []uint64{0}
		thins := map[uint64]*thinpool.Thin{0: e.thin(0, size)}
		buf := make([]byte, 3*bs)
		for step := 0; step < 300; step++ {
			id := ids[rng.IntN(len(ids))]
			th := thins[id]
			off := rng.Uint64N(size - uint64(len(buf)))
			if rng.IntN(4) != 0 {
				off = hot - 32*bs + rng.Uint64N(64*bs)
			}
			n := 1 + rng.Uint64N(uint64(len(buf)))
			switch x := rng.IntN(10); {
			case x < 1 && len(ids) < 6:
				snap := uint64(len(ids))
				if err := e.pool.CreateSnap(bg, snap, id); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, snap)
				thins[snap] = e.thin(snap, size)
			case x < 3:
				if err := th.Discard(bg, off, n); err != nil {
					t.Fatal(err)
				}
			default:
				for i := range buf[:n] {
					buf[i] = byte(rng.Uint32())
				}
				if err := th.WriteAt(bg, buf[:n], off, false); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, base := range ids {
			for _, target := range ids {
				off := hot - 40*bs + rng.Uint64N(40*bs)
				end := hot + 1 + rng.Uint64N(40*bs)
				if rng.IntN(2) == 0 {
					off, end = 0, size
				}
				var got []thinpool.DiffExtent
				err := e.pool.Diff(bg, base, target, off, end, func(x thinpool.DiffExtent) error {
					got = append(got, x)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				want, clean := modelDiff(t, e.pool.Metadata(), base, target, off, end, bs)
				if !slices.Equal(got, want) {
					t.Fatalf("diff %d %d [%d, %d):\n got %v\nwant %v", base, target, off, end, got, want)
				}
				checkCleanReadsAlike(t, thins[base], thins[target], off, end, bs, clean)
				if base == target {
					checkAllocated(t, e.pool, target, off, end)
				}
			}
		}
	})
}

// checkAllocated checks Allocated of dev over [off, end) against its
// mappings: every mapped block, merged, clipped, none Unmapped.
func checkAllocated(t *testing.T, p *thinpool.Pool, dev, off, end uint64) {
	t.Helper()
	bs := p.BlockSize()
	var want []thinpool.DiffExtent
	for _, v := range slices.Sorted(maps.Keys(mappings(t, p.Metadata(), dev))) {
		if (v+1)*bs <= off || v*bs >= end {
			continue
		}
		e := thinpool.DiffExtent{Off: max(v*bs, off)}
		e.Len = min((v+1)*bs, end) - e.Off
		if k := len(want); k > 0 && want[k-1].Off+want[k-1].Len == e.Off {
			want[k-1].Len += e.Len
			continue
		}
		want = append(want, e)
	}
	var got []thinpool.DiffExtent
	if err := p.Allocated(bg, dev, off, end, func(x thinpool.DiffExtent) error {
		got = append(got, x)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("allocated %d [%d, %d):\n got %v\nwant %v", dev, off, end, got, want)
	}
}

// checkCleanReadsAlike reads the blocks Diff leaves out (those both map,
// clipped to [off, end)) on both devices: they must read alike. Blocks
// neither maps read as zeroes on both.
func checkCleanReadsAlike(t *testing.T, base, target *thinpool.Thin, off, end, bs uint64, clean []uint64) {
	t.Helper()
	a, b := make([]byte, bs), make([]byte, bs)
	for _, v := range clean {
		p := max(v*bs, off)
		n := min((v+1)*bs, end) - p
		if err := base.ReadAt(bg, a[:n], p); err != nil {
			t.Fatal(err)
		}
		if err := target.ReadAt(bg, b[:n], p); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a[:n], b[:n]) {
			t.Fatalf("[%d, +%d) reported clean but reads differently", p, n)
		}
	}
}

// TestDiffWhileWriting runs diffs of a volume against its snapshot while
// writers change the volume: each diff completes with ordered, disjoint
// ranges inside the request, and once the writers stop it matches the
// mappings again.
func TestDiffWhileWriting(t *testing.T) {
	e := newFileEnv(t, 16<<20, 256<<20, thinpool.Config{})
	const size = 8 << 30 // past diffChunk blocks: writes land between chunks
	bs := e.pool.BlockSize()
	th := e.thin(0, size)
	buf := make([]byte, bs)
	for v := uint64(0); v < 64; v++ {
		if err := th.WriteAt(bg, buf, v*(size/64), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.pool.CreateSnap(bg, 1, 0); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	errc := make(chan error, 2)
	var ops atomic.Int64
	for w := range 2 {
		go func() {
			rng := randtest.FromSeed(uint64(w) + 1)
			p := make([]byte, bs)
			for {
				select {
				case <-stop:
					errc <- nil
					return
				default:
				}
				off := rng.Uint64N(size/bs) * bs
				var err error
				if rng.IntN(3) == 0 {
					err = th.Discard(bg, off, bs)
				} else {
					err = th.WriteAt(bg, p, off, false)
				}
				if err != nil {
					errc <- err
					return
				}
				ops.Add(1)
			}
		}()
	}
	diffs := 0
	for ; diffs < 20 || ops.Load() < 2000; diffs++ {
		var last uint64
		err := e.pool.Diff(bg, 1, 0, 0, size, func(x thinpool.DiffExtent) error {
			if x.Len == 0 || x.Off < last || x.Off+x.Len > size {
				t.Errorf("range %+v after %d", x, last)
			}
			last = x.Off + x.Len
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	t.Logf("%d diffs during %d writes and discards", diffs, ops.Load())
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	var got []thinpool.DiffExtent
	if err := e.pool.Diff(bg, 1, 0, 0, size, func(x thinpool.DiffExtent) error {
		got = append(got, x)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want, _ := modelDiff(t, e.pool.Metadata(), 1, 0, 0, size, bs); !slices.Equal(got, want) {
		t.Fatalf("after the writers:\n got %v\nwant %v", got, want)
	}
}
