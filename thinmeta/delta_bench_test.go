package thinmeta_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/thinmeta"
)

// BenchmarkDelta compares an origin of mapped=N blocks with its snapshot
// after 1000 blocks of the origin were rewritten (in ten clustered
// regions, or at random), skipping what the two share as the live diff
// does. Its time should follow the changes, not N.
func BenchmarkDelta(b *testing.B) {
	for _, layout := range []string{"clustered", "random"} {
		for _, n := range []uint64{100_000, 300_000, 1_000_000} {
			// One pool per case, made outside b.Run, which runs its
			// function more than once.
			p := deltaBenchPool(b, n, layout == "clustered")
			b.Run(fmt.Sprintf("changes=%s/mapped=%d", layout, n), func(b *testing.B) {
				var st thinmeta.DeltaStats
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					var err error
					st, err = p.Delta(1, 0, thinmeta.DeltaOptions{SkipSame: true}, func(thinmeta.DeltaRun) error { return nil })
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(st.NodesRead), "nodes/op")
			})
		}
	}
}

// deltaBenchPool is an origin mapping n blocks and a snapshot of it, after
// which 1000 of the origin's blocks were rewritten.
func deltaBenchPool(b *testing.B, n uint64, clustered bool) *thinmeta.Pool {
	b.Helper()
	const metaBlocks = 1 << 15
	dev := bm.NewMemDevice(metaBlocks * bm.BlockSize)
	p := pooltest.CreateMetadata(b, dev, metaBlocks, 128, n+2000, thinmeta.Options{CacheBytes: 128 << 20})
	if err := p.CreateThin(0); err != nil {
		b.Fatal(err)
	}
	for vb := uint64(0); vb < n; vb++ {
		db, err := p.AllocDataBlock()
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Insert(0, vb, db); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.CreateSnap(1, 0); err != nil {
		b.Fatal(err)
	}
	rewrite(b, p, n, 1000, clustered)
	return p
}

// rewrite maps k blocks of device 0 to new data blocks: ten clustered
// runs, or k blocks at random.
func rewrite(b *testing.B, p *thinmeta.Pool, n uint64, k int, clustered bool) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < k; i++ {
		vb := rng.Uint64N(n)
		if clustered {
			region := uint64(i / (k / 10))
			vb = region*(n/10) + uint64(i%(k/10))
		}
		db, err := p.AllocDataBlock()
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Insert(0, vb, db); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Commit(); err != nil {
		b.Fatal(err)
	}
}
