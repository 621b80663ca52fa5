package thinpool_test

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/internal/faultdev"
	"github.com/thind-storage/thind/thinpool"
)

// queueDelta is what the dispatcher did between two snapshots.
func queueDelta(before, after blk.QueueStats) (queued, dispatched, direct, merges uint64) {
	return after.Queued - before.Queued, after.Dispatched - before.Dispatched,
		after.Direct - before.Direct, after.Merges - before.Merges
}

// TestMultiBlockRequestsGoThroughTheQueues overwrites and reads 1 MiB over
// 16 blocks provisioned one after another on the data device: the 16
// pieces go through the software queues, merge into fewer backend calls,
// and read back right. A read whose two blocks meet on the data device
// with an unmapped block between them in the volume merges too; a lone
// block is issued directly.
func TestMultiBlockRequestsGoThroughTheQueues(t *testing.T) {
	e := newFileEnv(t, 16<<20, 64<<20, thinpool.Config{})
	th := e.thin(1, 32<<20)
	const mib = 1 << 20
	if err := th.WriteAt(bg, fill(1, mib), 0, false); err != nil {
		t.Fatal(err)
	}
	for v := uint64(0); v < 16; v++ {
		if l, err := e.pool.Metadata().Find(1, v); err != nil || l.DataBlock != v {
			t.Fatalf("block %d maps to %d (%v), want laid out in order", v, l.DataBlock, err)
		}
	}
	stats := func() blk.QueueStats { return e.pool.Stats().Dispatcher.Total() }

	want := fill(2, mib)
	before := stats()
	if err := th.WriteAt(bg, want, 0, false); err != nil {
		t.Fatal(err)
	}
	queued, dispatched, direct, merges := queueDelta(before, stats())
	if queued != 16 || direct != 0 || merges == 0 || dispatched >= 16 {
		t.Fatalf("1 MiB overwrite: %d queued, %d direct, %d merges, %d backend calls; want 16 queued, 0 direct, merges, fewer calls than pieces",
			queued, direct, merges, dispatched)
	}
	t.Logf("1 MiB overwrite: 16 pieces, %d merges, %d backend calls", merges, dispatched)

	// Block 16 is provisioned next, on data block 16; virtual block 18
	// on data block 17.
	for _, v := range []uint64{16, 18} {
		if err := th.WriteAt(bg, fill(v, bs64k), v*bs64k, false); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, 3*bs64k)
	before = stats()
	if err := th.ReadAt(bg, got, 16*bs64k); err != nil {
		t.Fatal(err)
	}
	if queued, dispatched, _, merges := queueDelta(before, stats()); queued != 2 || merges != 1 || dispatched != 1 {
		t.Fatalf("read over a gap: %d queued, %d merges, %d backend calls; want 2, 1, 1", queued, merges, dispatched)
	}
	if !bytes.Equal(got[:bs64k], fill(16, bs64k)) || !bytes.Equal(got[bs64k:2*bs64k], make([]byte, bs64k)) ||
		!bytes.Equal(got[2*bs64k:], fill(18, bs64k)) {
		t.Fatal("read over a gap returned the wrong data")
	}

	got = make([]byte, mib)
	if err := th.ReadAt(bg, got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("1 MiB read back: %v, equal %v", err, bytes.Equal(got, want))
	}
	before = stats()
	if err := th.ReadAt(bg, got[:4096], 8192); err != nil {
		t.Fatal(err)
	}
	if queued, _, direct, _ := queueDelta(before, stats()); queued != 0 || direct != 1 {
		t.Fatalf("4 KiB read: %d queued, %d direct; want issued directly", queued, direct)
	}
	e.commitAndCheck()
}

// TestAFaultInABatchFailsItsRequest fails the writes and reads of one data
// block in the middle of a 1 MiB write and read: each fails with EIO, the
// write's other pieces still complete (a failed overwrite leaves the
// blocks it did reach written, as a failed bio chain does), and the next
// requests on the same blocks succeed once the fault is gone.
func TestAFaultInABatchFailsItsRequest(t *testing.T) {
	e := newFaultEnv(t, 4<<20, 64*bs64k, thinpool.Config{})
	th := e.thin(1, 64*bs64k)
	const mib = 1 << 20
	if err := th.WriteAt(bg, fill(1, mib), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
	l, err := e.pool.Metadata().Find(1, 7)
	if err != nil {
		t.Fatal(err)
	}
	e.dataDev.Inject(faultdev.Rule{Ops: faultdev.OpRead | faultdev.OpWrite, Off: int64(l.DataBlock * bs64k), Len: bs64k})
	want := fill(2, mib)
	if err := th.WriteAt(bg, want, 0, false); !errors.Is(err, syscall.EIO) {
		t.Fatalf("1 MiB write over a failing block: %v, want EIO", err)
	}
	got := make([]byte, mib)
	if err := th.ReadAt(bg, got, 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("1 MiB read over a failing block: %v, want EIO", err)
	}
	e.dataDev.Heal()
	if err := th.WriteAt(bg, want, 0, true); err != nil {
		t.Fatal(err)
	}
	if err := th.ReadAt(bg, got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after the fault: %v, equal %v", err, bytes.Equal(got, want))
	}
	if m := e.pool.Mode(); m != thinpool.ModeWrite {
		t.Fatalf("mode %v after data faults", m)
	}
}
