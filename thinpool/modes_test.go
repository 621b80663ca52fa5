package thinpool_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/thinpool"
)

// TestOutOfMetadataSpace fills a tiny metadata device with mappings: the
// pool must go read-only with ErrMetadataSpace before the metadata is
// exhausted, keep serving reads and overwrites of provisioned blocks, and
// still commit (on the reserve) metadata both checkers pass.
func TestOutOfMetadataSpace(t *testing.T) {
	modes := make(chan thinpool.Mode, 4)
	e := newFileEnv(t, 64*4096, 1<<30, thinpool.Config{OnModeChange: func(_, to thinpool.Mode) { modes <- to }})
	th := e.thin(1, 1<<40)
	block := make([]byte, 4096)
	var written []uint64
	var err error
	rng := randtest.New(t)
	for i := 0; i < 16000; i++ {
		// Random blocks, so leaves split half full.
		v := rng.Uint64N(1 << 24)
		if err = th.WriteAt(bg, block, v*65536, false); err != nil {
			break
		}
		written = append(written, v)
	}
	if !errors.Is(err, thinpool.ErrMetadataSpace) {
		t.Fatalf("after %d blocks: %v", len(written), err)
	}
	if m := <-modes; m != thinpool.ModeReadOnly || e.pool.Mode() != thinpool.ModeReadOnly {
		t.Fatalf("mode %v", m)
	}
	t.Logf("the metadata held %d mappings", len(written))
	got := make([]byte, 4096)
	if err := th.ReadAt(bg, got, written[len(written)-1]*65536); err != nil || !bytes.Equal(got, block) {
		t.Fatalf("read in read-only mode: %v", err)
	}
	if err := th.WriteAt(bg, []byte{1}, written[0]*65536, false); err != nil {
		t.Fatalf("overwrite of a provisioned block: %v", err)
	}
	distinct := map[uint64]bool{} // random blocks may repeat
	for _, v := range written {
		distinct[v] = true
	}
	if r := e.commitAndCheck(); r.Mappings != uint64(len(distinct)) {
		t.Fatalf("%d mappings committed, %d blocks written", r.Mappings, len(distinct))
	}
}

// TestLowWaterMark runs the callback once when free data blocks drop
// below the mark.
func TestLowWaterMark(t *testing.T) {
	fired := make(chan uint64, 4)
	e := newFileEnv(t, 16<<20, 64*65536, thinpool.Config{LowWaterBlocks: 16, OnLowWater: func(free uint64) { fired <- free }})
	th := e.thin(1, 64*65536)
	for v := uint64(0); v < 50; v++ {
		if err := th.WriteAt(bg, []byte{1}, v*65536, false); err != nil {
			t.Fatal(err)
		}
	}
	if free := <-fired; free >= 16 {
		t.Fatalf("fired with %d free blocks", free)
	}
	if len(fired) != 0 {
		t.Fatal("fired more than once")
	}
}

// TestShrinkThenGrowShowsZeroes shrinks a volume to the middle of a block
// and grows it back: everything past the old end must read as zeroes and
// the blocks past it must be unmapped.
func TestShrinkThenGrowShowsZeroes(t *testing.T) {
	e := newFileEnv(t, 16<<20, 64<<20, thinpool.Config{})
	th := e.thin(1, 8<<20)
	if err := th.WriteAt(bg, fill(9, 8<<20), 0, false); err != nil {
		t.Fatal(err)
	}
	const cut = 3<<20 + 1000
	if err := th.Resize(bg, cut); err != nil {
		t.Fatal(err)
	}
	if m, _ := e.md.MappedBlocks(1); m != 49 {
		t.Fatalf("%d blocks mapped after shrinking to %d bytes, want 49", m, cut)
	}
	if err := th.Resize(bg, 8<<20); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8<<20)
	if err := th.ReadAt(bg, got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:cut], fill(9, 8<<20)[:cut]) {
		t.Fatal("data before the cut changed")
	}
	if !bytes.Equal(got[cut:], make([]byte, 8<<20-cut)) {
		t.Fatal("data past the old end came back after growing")
	}
	e.commitAndCheck()
}

// Settings no pool can run with are refused at Open, not met later as a
// panicking ticker.
func TestOpenRejectsNegativeIntervals(t *testing.T) {
	for _, cfg := range []thinpool.Config{{CommitInterval: -time.Second}, {NoSpaceTimeout: -time.Second}} {
		e := newFileEnv(t, 16<<20, 16<<20, thinpool.Config{})
		e.pool.Close()
		e.pool = nil
		data, err := blk.OpenFile(e.dataPath, blk.FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p, err := thinpool.Open(e.md, data, cfg); err == nil || !strings.Contains(err.Error(), "must be positive") { //pooltest:refused, no engine opens
			if p != nil {
				p.Close()
			}
			t.Fatalf("Open with %+v: %v, want an error", cfg, err)
		}
	}
}

// TestGrowingAFullMetadataDeviceOnline fills a tiny metadata device until
// the pool is read-only for lack of metadata space, grows the file and
// the pool online: the pool is back in write mode, the new space is
// free at once (not after the next commit), and writes provision again.
func TestGrowingAFullMetadataDeviceOnline(t *testing.T) {
	e := newFileEnv(t, 64*4096, 1<<30, thinpool.Config{})
	th := e.thin(1, 1<<40)
	block := make([]byte, 4096)
	rng := randtest.New(t)
	var err error
	for i := 0; i < 16000 && err == nil; i++ {
		err = th.WriteAt(bg, block, rng.Uint64N(1<<24)*65536, false)
	}
	if !errors.Is(err, thinpool.ErrMetadataSpace) || e.pool.Mode() != thinpool.ModeReadOnly {
		t.Fatalf("filling the metadata: %v, mode %v", err, e.pool.Mode())
	}
	if err := os.Truncate(e.metaPath, 1024*4096); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.ResizeMetadata(bg, 1024); err != nil {
		t.Fatal(err)
	}
	st := e.pool.Stats()
	if st.Mode != thinpool.ModeWrite || st.Metadata.MetadataBlocks != 1024 || st.Metadata.MetadataBlocksFree < 1024-64-st.Metadata.MetadataReserve {
		t.Fatalf("after the grow: mode %v, %d metadata blocks, %d free (reserve %d)", st.Mode, st.Metadata.MetadataBlocks,
			st.Metadata.MetadataBlocksFree, st.Metadata.MetadataReserve)
	}
	for i := 0; i < 200; i++ {
		if err := th.WriteAt(bg, block, rng.Uint64N(1<<24)*65536, false); err != nil {
			t.Fatalf("write %d after the grow: %v", i, err)
		}
	}
	e.commitAndCheck()
}
