package thinmeta_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/thinmeta"
)

// benchPool returns a pool with one device mapping n blocks.
func benchPool(b *testing.B, n uint64, sequential bool) *thinmeta.Pool {
	b.Helper()
	const metaBlocks = 1 << 18
	dev := bm.NewMemDevice(metaBlocks * bm.BlockSize)
	p := pooltest.CreateMetadata(b, dev, metaBlocks, 128, 1<<30, thinmeta.Options{CacheBytes: 1 << 30})
	if err := p.CreateThin(0); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := uint64(0); i < n; i++ {
		vb := i
		if !sequential {
			vb = rng.Uint64N(4 * n)
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
	return p
}

func BenchmarkLookup(b *testing.B) {
	const n = 1 << 20
	for _, order := range []string{"sequential", "random"} {
		b.Run("order="+order, func(b *testing.B) {
			p := benchPool(b, n, true)
			rng := rand.New(rand.NewPCG(3, 4))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				vb := uint64(i) % n
				if order == "random" {
					vb = rng.Uint64N(n)
				}
				if _, err := p.Find(0, vb); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLookupParallel(b *testing.B) {
	const n = 1 << 20
	p := benchPool(b, n, true)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 4))
		for pb.Next() {
			if _, err := p.Find(0, rng.Uint64N(n)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkInsert(b *testing.B) {
	for _, order := range []string{"sequential", "random"} {
		b.Run("order="+order, func(b *testing.B) {
			p := benchPool(b, 0, true)
			rng := rand.New(rand.NewPCG(5, 6))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				vb := uint64(i)
				if order == "random" {
					vb = rng.Uint64N(1 << 30)
				}
				db, err := p.AllocDataBlock()
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Insert(0, vb, db); err != nil {
					b.Fatal(err)
				}
				if i%100000 == 99999 {
					if err := p.Commit(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkCommit measures a commit of a transaction that dirtied about
// N metadata blocks (inserts spread over as many leaves).
func BenchmarkCommit(b *testing.B) {
	for _, dirty := range []int{16, 256, 4096} {
		b.Run(fmt.Sprintf("dirty=%d", dirty), func(b *testing.B) {
			p := benchPool(b, 1<<20, true)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for j := 0; j < dirty; j++ {
					// Remap one block per leaf (leaves hold up to 252
					// keys): each dirties its leaf and a data bitmap.
					vb := uint64(j) * (1 << 20 / uint64(dirty))
					db, err := p.AllocDataBlock()
					if err != nil {
						b.Fatal(err)
					}
					if err := p.Insert(0, vb, db); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if err := p.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
