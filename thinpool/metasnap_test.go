package thinpool_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/thinpool"
)

// TestReserveMetadataSnapWhileWriting takes and drops metadata snapshots
// while a thin is being written to new blocks: each reserve must be on
// disk when it returns (a tool reading the device finds the held root),
// each release too, and the pool must stay consistent for the checker
// (pooltest, when the test ends).
func TestReserveMetadataSnapWhileWriting(t *testing.T) {
	e := newFileEnv(t, metaBytes, dataBytes, thinpool.Config{})
	th := e.thin(1, volBytes)
	var stop atomic.Bool
	var written atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, unit)
		for i := uint64(0); !stop.Load(); i++ {
			buf[0] = byte(i)
			if err := th.WriteAt(bg, buf, (i*7919%volUnits)*unit, false); err != nil {
				t.Error(err)
				return
			}
			written.Add(1)
		}
	}()
	onDisk := func() uint64 {
		sb := make([]byte, bm.BlockSize)
		if _, err := e.meta.ReadAt(sb, 0); err != nil {
			t.Fatal(err)
		}
		return thinmeta.DecodeSuperblock(sb).HeldRoot
	}
	for i := 0; i < 20; i++ {
		if err := e.pool.ReserveMetadataSnap(bg); err != nil {
			t.Fatal(err)
		}
		held, err := e.pool.Metadata().MetadataSnap()
		if err != nil || held == 0 {
			t.Fatalf("after reserve: held %d, %v", held, err)
		}
		if got := onDisk(); got != held {
			t.Fatalf("reserve returned with held root %d in core, %d on disk", held, got)
		}
		if err := e.pool.ReserveMetadataSnap(bg); !errors.Is(err, thinmeta.ErrMetadataSnapExists) {
			t.Fatalf("second reserve: %v", err)
		}
		if err := e.pool.ReleaseMetadataSnap(bg); err != nil {
			t.Fatal(err)
		}
		if got := onDisk(); got != 0 {
			t.Fatalf("release returned with held root %d on disk", got)
		}
	}
	if err := e.pool.ReleaseMetadataSnap(bg); !errors.Is(err, thinmeta.ErrNoMetadataSnap) {
		t.Fatalf("release with none held: %v", err)
	}
	stop.Store(true)
	wg.Wait()
	if written.Load() == 0 {
		t.Fatal("no write ran alongside the reserves")
	}
	t.Logf("20 reserves and releases alongside %d writes", written.Load())
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
}
