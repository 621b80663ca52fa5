package spacemap

import (
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
)

// TestFreeRunsMatchCounts checks FreeRuns against per-block counts over a
// map of several bitmaps, some wholly free, some wholly used, with counts
// of every size, for random ranges.
func TestFreeRunsMatchCounts(t *testing.T) {
	p := newPool(t, 4000)
	n := uint64(3*EntriesPerBlock + 777)
	d, err := CreateDisk(p.tm, n)
	if err != nil {
		t.Fatal(err)
	}
	rng := randtest.New(t)
	inc := func(b uint64, k int) {
		for range k {
			if err := d.Inc(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Bitmap 1 wholly used; bitmaps 0 and 3 scattered; bitmap 2 free.
	for b := uint64(EntriesPerBlock); b < 2*EntriesPerBlock; b++ {
		inc(b, 1)
	}
	for range 3000 {
		b := rng.Uint64N(EntriesPerBlock)
		if rng.IntN(2) == 0 {
			b += 3 * EntriesPerBlock
			b = min(b, n-1)
		}
		inc(b, 1+rng.IntN(4))
	}
	for b := uint64(100); b < 200; b++ { // a whole-word run of used blocks
		inc(b, 1)
	}
	for trial := 0; trial < 200; trial++ {
		begin := rng.Uint64N(n)
		end := begin + rng.Uint64N(n-begin+1)
		if trial == 0 {
			begin, end = 0, n+10 // past the end is clipped
		}
		var want [][2]uint64
		for b := begin; b < min(end, n); b++ {
			c, err := d.Count(b)
			if err != nil {
				t.Fatal(err)
			}
			if c != 0 {
				continue
			}
			if k := len(want); k > 0 && want[k-1][1] == b {
				want[k-1][1]++
			} else {
				want = append(want, [2]uint64{b, b + 1})
			}
		}
		var got [][2]uint64
		if err := d.FreeRuns(begin, end, func(b, e uint64) error {
			got = append(got, [2]uint64{b, e})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("[%d, %d): %d runs, want %d", begin, end, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("[%d, %d): run %d is %v, want %v", begin, end, i, got[i], want[i])
			}
		}
	}
}
