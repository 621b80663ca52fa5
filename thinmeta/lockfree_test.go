package thinmeta_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/thinmeta"
)

// TestLockFreeLookupsSeeOnlyRealMappings runs lock-free lookups while one
// writer remaps, removes and range-removes blocks of a device far larger
// than the cache (so slots are shared by many keys). A lookup may be a
// moment late, but whatever it returns must be a data block that was at
// some point mapped to that very virtual block: never another key's value,
// never a torn slot.
func TestLockFreeLookupsSeeOnlyRealMappings(t *testing.T) {
	const vblocks = 3 * thinmeta.CachedBlocks
	seed := randtest.Seed(t)
	dev := bm.NewMemDevice(64 << 20)
	p := pooltest.CreateMetadata(t, dev, dev.NrBlocks(), 128, 1<<22, thinmeta.Options{})
	if err := p.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	// owner[b] is the virtual block data block b was mapped to, +1. No
	// commit happens, so no data block is reused.
	owner := make([]atomic.Uint64, 1<<22)
	mapNew := func(v uint64) {
		b, err := p.AllocDataBlock()
		if err != nil {
			t.Fatal(err)
		}
		owner[b].Store(v + 1)
		if err := p.Insert(1, v, b); err != nil {
			t.Fatal(err)
		}
	}
	for v := uint64(0); v < vblocks; v += 3 {
		mapNew(v)
	}
	stop := make(chan struct{})
	var lookups atomic.Int64
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Go(func() {
			rng := randtest.Stream(seed, uint64(r))
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := rng.Uint64N(vblocks)
				l, err := p.Find(1, v)
				if errors.Is(err, thinmeta.ErrNotMapped) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				lookups.Add(1)
				if got := owner[l.DataBlock].Load(); got != v+1 {
					t.Errorf("lookup of block %d returned data block %d, which was mapped to %d", v, l.DataBlock, int64(got)-1)
					return
				}
			}
		})
	}
	rng := randtest.Stream(seed, 9)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && !t.Failed() {
		v := rng.Uint64N(vblocks)
		switch x := rng.IntN(100); {
		case x < 70:
			mapNew(v)
		case x < 98:
			if err := p.Remove(1, v); err != nil && !errors.Is(err, thinmeta.ErrNotMapped) {
				t.Fatal(err)
			}
		default:
			if _, err := p.RemoveRange(1, v, v+100); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	if lookups.Load() == 0 {
		t.Fatal("no lookup found a mapping")
	}
	t.Logf("%d lookups found a mapping", lookups.Load())
}
