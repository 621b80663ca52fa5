package thinpool_test

import (
	"bytes"
	"sync"
	"testing"

	"github.com/thind-storage/thind/thinpool"
)

// TestConcurrentFirstWritesProvisionOnce has 16 goroutines write disjoint
// pieces of the same unprovisioned blocks at once: each block must be
// provisioned exactly once and end up holding every piece.
func TestConcurrentFirstWritesProvisionOnce(t *testing.T) {
	e := newFileEnv(t, 16<<20, 64<<20, thinpool.Config{})
	th := e.thin(1, 16<<20)
	const blocks, writers = 32, 16
	const piece = 65536 / writers
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			data := bytes.Repeat([]byte{byte(w + 1)}, piece)
			for b := 0; b < blocks; b++ {
				if err := th.WriteAt(bg, data, uint64(b*65536+w*piece), false); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	st := e.pool.Stats()
	if got := st.Thins[1].Provisioned; got != blocks {
		t.Fatalf("%d blocks provisioned for %d blocks written", got, blocks)
	}
	got := make([]byte, blocks*65536)
	if err := th.ReadAt(bg, got, 0); err != nil {
		t.Fatal(err)
	}
	for i, c := range got {
		if want := byte((i%65536)/piece + 1); c != want {
			t.Fatalf("byte %d is %d, want %d: a concurrent first write was lost", i, c, want)
		}
	}
	if st.PrisonWaits == 0 {
		t.Log("no request had to wait in a cell this time")
	}
	if r := e.commitAndCheck(); r.DataBlocksUsed != blocks {
		t.Fatalf("%d data blocks used", r.DataBlocksUsed)
	}
}
