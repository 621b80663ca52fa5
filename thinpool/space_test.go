package thinpool_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/thind-storage/thind/thinpool"
)

func allocatedBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestDiscardPassdown checks that discarding freed blocks punches holes
// in the data file (du drops), and that with passdown off it does not.
func TestDiscardPassdown(t *testing.T) {
	for _, off := range []bool{false, true} {
		name := "passdown=on"
		if off {
			name = "passdown=off"
		}
		t.Run(name, func(t *testing.T) {
			e := newFileEnv(t, 16<<20, 128<<20, thinpool.Config{NoDiscardPassdown: off})
			th := e.thin(1, 64<<20)
			if err := th.WriteAt(bg, fill(3, 32<<20), 0, true); err != nil {
				t.Fatal(err)
			}
			before := allocatedBytes(t, e.dataPath)
			if before < 32<<20 {
				t.Fatalf("data file holds %d bytes after writing 32 MiB", before)
			}
			if err := th.Discard(bg, 0, 32<<20); err != nil {
				t.Fatal(err)
			}
			// Freed blocks are passed down once the commit that frees
			// them is durable.
			if err := th.Flush(bg); err != nil {
				t.Fatal(err)
			}
			after := allocatedBytes(t, e.dataPath)
			if off && after < before {
				t.Fatalf("passdown off, but the data file shrank from %d to %d", before, after)
			}
			if !off && after > before-30<<20 {
				t.Fatalf("passdown on, but the data file only went from %d to %d", before, after)
			}
			if st := e.pool.Stats(); !off && st.Thins[1].PassdownBytes != 32<<20 {
				t.Fatalf("passed down %d bytes", st.Thins[1].PassdownBytes)
			}
			r := e.commitAndCheck()
			if r.DataBlocksUsed != 0 {
				t.Fatalf("%d data blocks still used", r.DataBlocksUsed)
			}
		})
	}
}

// TestNoStaleData fills blocks in one volume, frees them, and provisions
// them again for another volume with partial writes: the rest of each
// block must read as zeroes, never as the first volume's bytes.
func TestNoStaleData(t *testing.T) {
	// Passdown off, so the old bytes stay on the data device and only
	// block zeroing stands between them and the new volume.
	e := newFileEnv(t, 16<<20, 4<<20, thinpool.Config{NoDiscardPassdown: true})
	a := e.thin(1, 4<<20)
	secret := bytes.Repeat([]byte("secret!!"), 512<<10/8*8)
	if err := a.WriteAt(bg, secret[:4<<20], 0, true); err != nil {
		t.Fatal(err)
	}
	if err := a.Discard(bg, 0, 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.Commit(bg); err != nil { // freed blocks become reusable
		t.Fatal(err)
	}
	b := e.thin(2, 4<<20)
	for blk := uint64(0); blk < 64; blk++ {
		if err := b.WriteAt(bg, []byte{0xEE}, blk*65536+100, false); err != nil {
			t.Fatalf("block %d: %v", blk, err)
		}
	}
	got := make([]byte, 4<<20)
	if err := b.ReadAt(bg, got, 0); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte("secret")) {
		t.Fatal("a newly provisioned block shows another volume's old bytes")
	}
	for i, c := range got {
		if want := byte(0); i%65536 == 100 {
			if c != 0xEE {
				t.Fatalf("byte %d: %#x", i, c)
			}
		} else if c != want {
			t.Fatalf("byte %d: %#x, want 0", i, c)
		}
	}
	if r := e.commitAndCheck(); r.DataBlocksUsed != 64 {
		t.Fatalf("%d data blocks used, want 64", r.DataBlocksUsed)
	}
}

// TestDeletingEveryDeviceFreesEveryBlock deletes origins and snapshots
// in a tangle of sharing and checks that no data block stays used.
func TestDeletingEveryDeviceFreesEveryBlock(t *testing.T) {
	e := newFileEnv(t, 16<<20, 64<<20, thinpool.Config{})
	a := e.thin(1, 32<<20)
	a.WriteAt(bg, fill(4, 8<<20), 0, false)
	if err := e.pool.CreateSnap(bg, 2, 1); err != nil {
		t.Fatal(err)
	}
	a.WriteAt(bg, fill(5, 1<<20), 1<<20, false) // breaks sharing
	if err := e.pool.CreateSnap(bg, 3, 2); err != nil {
		t.Fatal(err)
	}
	s3, _ := e.pool.OpenThin(3, 32<<20)
	s3.WriteAt(bg, fill(6, 3<<20), 5<<20, false)
	s3.Close()
	if r := e.commitAndCheck(); r.DataBlocksUsed == 0 {
		t.Fatal("nothing used")
	}
	a.Close()
	for _, id := range []uint64{2, 1, 3} {
		if err := e.pool.DeleteThin(bg, id); err != nil {
			t.Fatalf("delete %d: %v", id, err)
		}
	}
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
	r := e.commitAndCheck()
	if r.DataBlocksUsed != 0 || r.Devices != 0 {
		t.Fatalf("after deleting everything: %d devices, %d data blocks used", r.Devices, r.DataBlocksUsed)
	}
	if got := allocatedBytes(t, e.dataPath); got > 1<<20 {
		t.Fatalf("the data file still holds %d bytes", got)
	}
}

// TestOutOfDataSpace fills the pool. With error_if_no_space writes fail
// at once; otherwise they queue and fail after the timeout. Reads keep
// working, and once the data device grows, writes work again without a
// restart.
func TestOutOfDataSpace(t *testing.T) {
	for _, errorAtOnce := range []bool{true, false} {
		t.Run(map[bool]string{true: "error_if_no_space", false: "queue"}[errorAtOnce], func(t *testing.T) {
			e := newFileEnv(t, 16<<20, 2<<20, thinpool.Config{ErrorIfNoSpace: errorAtOnce, NoSpaceTimeout: 300 * time.Millisecond})
			th := e.thin(1, 16<<20)
			data := fill(7, 2<<20)
			if err := th.WriteAt(bg, data, 0, false); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err := th.WriteAt(bg, []byte{1}, 8<<20, false)
			if !errors.Is(err, thinpool.ErrNoSpace) {
				t.Fatalf("write to a full pool: %v", err)
			}
			waited := time.Since(start)
			if !errorAtOnce && waited < 250*time.Millisecond {
				t.Fatalf("the write failed after %v, before the no-space timeout", waited)
			}
			if e.pool.Mode() != thinpool.ModeOutOfDataSpace {
				t.Fatalf("mode %v", e.pool.Mode())
			}
			got := make([]byte, 2<<20)
			if err := th.ReadAt(bg, got, 0); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read in out-of-space mode: %v", err)
			}
			// Overwrites of provisioned blocks need no space.
			if err := th.WriteAt(bg, []byte{9}, 0, false); err != nil {
				t.Fatalf("overwrite in out-of-space mode: %v", err)
			}
			// Grow the data file; the pool picks it up live.
			if err := os.Truncate(e.dataPath, 8<<20); err != nil {
				t.Fatal(err)
			}
			if err := e.pool.Resize(bg); err != nil {
				t.Fatal(err)
			}
			if err := th.WriteAt(bg, []byte{1}, 8<<20, true); err != nil {
				t.Fatalf("write after growing: %v", err)
			}
			if e.pool.Mode() != thinpool.ModeWrite {
				t.Fatalf("mode %v after growing", e.pool.Mode())
			}
			e.commitAndCheck()
		})
	}
}

// TestQueuedWriteResumesWhenSpaceAppears blocks a write on a full pool and
// grows the data device under it.
func TestQueuedWriteResumesWhenSpaceAppears(t *testing.T) {
	e, th, full := newFullPool(t)
	done := make(chan error, 1)
	go func() { done <- th.WriteAt(bg, []byte{7}, 4<<20, false) }()
	select {
	case <-full:
	case <-time.After(30 * time.Second):
		t.Fatal("the pool never went out of space")
	}
	os.Truncate(e.dataPath, 4<<20)
	if err := e.pool.Resize(bg); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the queued write failed: %v", err)
	}
}

// TestDeleteUnderAHoldFreesSpaceForQueuedWrites deletes a device of a
// full pool while commits are held, as the catalog deletes a volume: the
// delete must not wait for a commit the hold blocks, and the holder's
// commit must wake the writes queued for space.
func TestDeleteUnderAHoldFreesSpaceForQueuedWrites(t *testing.T) {
	full := make(chan struct{}, 1)
	cfg := thinpool.Config{NoSpaceTimeout: time.Minute, OnModeChange: func(_, to thinpool.Mode) {
		if to == thinpool.ModeOutOfDataSpace {
			select {
			case full <- struct{}{}:
			default:
			}
		}
	}}
	e := newFileEnv(t, 16<<20, 1<<20, cfg)
	if err := e.pool.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	victim, err := e.pool.OpenThin(1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := victim.WriteAt(bg, fill(5, 1<<20), 0, true); err != nil {
		t.Fatal(err)
	}
	victim.Close()
	th := e.thin(2, 16<<20)
	done := make(chan error, 1)
	go func() { done <- th.WriteAt(bg, []byte{7}, 4<<20, false) }()
	select {
	case <-full:
	case <-time.After(30 * time.Second):
		t.Fatal("the pool never went out of space")
	}

	commit, release := e.pool.HoldCommits()
	defer release()
	start := time.Now()
	ctx, cancel := context.WithTimeout(bg, 20*time.Second)
	defer cancel()
	if err := e.pool.DeleteThin(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("DeleteThin under a hold took %v: it waited for a commit the hold blocks", took)
	}
	if err := commit(); err != nil {
		t.Fatal(err)
	}
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the queued write failed: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the queued write was not woken by the commit that freed space")
	}
	if m := e.pool.Mode(); m != thinpool.ModeWrite {
		t.Fatalf("mode %v after the space came back", m)
	}
}
