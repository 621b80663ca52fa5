package bioprison

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkDetainRelease is the engine's hot path: a holder detains a
// block, zero or more requests queue behind it, and the holder releases the
// cell into a reused buffer. After warm-up it must not allocate.
func BenchmarkDetainRelease(b *testing.B) {
	for _, waiters := range []int{0, 4} {
		b.Run(fmt.Sprintf("waiters=%d", waiters), func(b *testing.B) {
			p := New[*int](Options{})
			x := new(int)
			var buf []*int
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				k := BlockKey(Virtual, 1, uint64(i%4096))
				c, _, _ := p.Detain(k, x)
				for range waiters {
					p.Detain(k, x)
				}
				buf = p.Release(c, buf[:0])
			}
		})
	}
}

// BenchmarkDetainReleaseParallel shows what sharding buys: goroutines
// detain unrelated blocks, which contend only when their windows share a
// region.
func BenchmarkDetainReleaseParallel(b *testing.B) {
	for _, regions := range []int{1, DefaultRegions} {
		b.Run(fmt.Sprintf("regions=%d", regions), func(b *testing.B) {
			p := New[*int](Options{Regions: regions})
			var dev atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				d := dev.Add(1) // each goroutine its own thin: no collisions
				x := new(int)
				var buf []*int
				for i := uint64(0); pb.Next(); i++ {
					k := BlockKey(Virtual, d, (i%64)*MaxRange+i%7)
					c, _, _ := p.Detain(k, x)
					buf = p.Release(c, buf[:0])
				}
			})
		})
	}
}

// BenchmarkDetainLiveCells measures detain and release with many cells
// live in the same region, where the sorted slice has to search and move.
func BenchmarkDetainLiveCells(b *testing.B) {
	for _, live := range []int{16, 256, 1024} {
		b.Run(fmt.Sprintf("live=%d", live), func(b *testing.B) {
			p := New[*int](Options{Regions: 1})
			x := new(int)
			for i := range live {
				p.Detain(BlockKey(Data, 0, uint64(2*i)), x)
			}
			var buf []*int
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				k := BlockKey(Data, 0, uint64(2*(i%live)+1))
				c, _, _ := p.Detain(k, x)
				buf = p.Release(c, buf[:0])
			}
		})
	}
}

// BenchmarkLock is the blocking helper without contention: it allocates
// nothing.
func BenchmarkLock(b *testing.B) {
	b.Run("contended=false", func(b *testing.B) {
		l := NewLocker(Options{})
		ctx := context.Background()
		b.ReportAllocs()
		for i := range b.N {
			h, err := l.Lock(ctx, BlockKey(Virtual, 1, uint64(i%4096)))
			if err != nil {
				b.Fatal(err)
			}
			l.Unlock(h)
		}
	})
}

// BenchmarkDeferredSet counts I/O in and out with work queued between, as
// dm-thin's all_io_ds sees it.
func BenchmarkDeferredSet(b *testing.B) {
	for _, inflight := range []int{1, 32} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			var ds DeferredSet[int]
			ring := make([]DeferredEntry, inflight)
			for i := range ring {
				ring[i] = ds.Inc()
			}
			var run []int
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				j := i % inflight
				ds.AddWork(i)
				run = ds.Dec(ring[j], run[:0])
				ring[j] = ds.Inc()
			}
		})
	}
}

// BenchmarkDeferredSetIO is the per-I/O path alone, Inc and Dec from every
// core at once, as reads and writes to one thin device do.
func BenchmarkDeferredSetIO(b *testing.B) {
	var ds DeferredSet[int]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var run []int
		for pb.Next() {
			run = ds.Dec(ds.Inc(), run[:0])
		}
	})
}
