package thinpool_test

import (
	"math"
	"testing"

	"github.com/thind-storage/thind/thinpool"
)

// UnmapBlocks to MaxUint64 ("to the end", as the catalog asks when a
// volume shrinks) unmaps what is there and returns, rather than walking
// 2^64 blocks of empty chunks (before the fix it ran for ever).
func TestUnmapBlocksToTheEndStopsAtTheHighestMappedBlock(t *testing.T) {
	e := newFileEnv(t, 16<<20, 64<<20, thinpool.Config{})
	th := e.thin(1, 32<<20)
	buf := make([]byte, 64<<10)
	for _, b := range []uint64{0, 3, 100, 300} {
		buf[0] = byte(b + 1)
		if err := th.WriteAt(bg, buf, b*64<<10, false); err != nil {
			t.Fatal(err)
		}
	}
	th.Close()
	n, err := e.pool.UnmapBlocks(bg, 1, 3, math.MaxUint64)
	if err != nil || n != 3 {
		t.Fatalf("UnmapBlocks(3, MaxUint64) = %d, %v; want 3 blocks", n, err)
	}
	if m, _ := e.pool.Metadata().MappedBlocks(1); m != 1 {
		t.Fatalf("%d blocks still mapped, want 1", m)
	}
	// Nothing left past block 3, nothing mapped at all: both return at once.
	if n, err := e.pool.UnmapBlocks(bg, 1, 3, math.MaxUint64); err != nil || n != 0 {
		t.Fatalf("UnmapBlocks again = %d, %v", n, err)
	}
	if n, err := e.pool.UnmapBlocks(bg, 1, 0, math.MaxUint64); err != nil || n != 1 {
		t.Fatalf("UnmapBlocks(0, MaxUint64) = %d, %v; want 1", n, err)
	}
	if n, err := e.pool.UnmapBlocks(bg, 1, 0, math.MaxUint64); err != nil || n != 0 {
		t.Fatalf("UnmapBlocks of an empty device = %d, %v", n, err)
	}
}
