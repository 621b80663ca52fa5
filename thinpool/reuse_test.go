package thinpool_test

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/thind-storage/thind/thinpool"
)

// A block provisioned and discarded in the same transaction is free in
// both the committed and the open state, so the allocator may hand it to
// another volume before the commit. The commit's passdown must not then
// punch the new owner's data out of it.
func TestPassdownSparesBlockReusedInSameTransaction(t *testing.T) {
	const blockBytes = 64 << 10
	const blocks = 16
	e := newFileEnv(t, 16<<20, blocks*blockBytes, thinpool.Config{ErrorIfNoSpace: true})
	a, b := e.thin(1, blocks*blockBytes), e.thin(2, blocks*blockBytes)
	// Fill all but one block, so that the allocator has no choice.
	if err := a.WriteAt(bg, make([]byte, (blocks-1)*blockBytes), blockBytes, false); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteAt(bg, fill(1, blockBytes), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := a.Discard(bg, 0, uint64(blockBytes)); err != nil {
		t.Fatal(err)
	}
	want := fill(2, blockBytes)
	if err := b.WriteAt(bg, want, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, blockBytes)
	if err := b.ReadAt(bg, got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("volume 2 lost its data: first bytes %x", got[:16])
	}
}

// A read takes no part in allIO: if a commit lets the block it looked up
// be reused before its data I/O, it must notice and read again rather than
// return another volume's bytes.
func TestReadRacingReuseReadsAgain(t *testing.T) {
	const blockBytes = 64 << 10
	const blocks = 16
	e := newFileEnv(t, 16<<20, blocks*blockBytes, thinpool.Config{ErrorIfNoSpace: true})
	a, b := e.thin(1, blocks*blockBytes), e.thin(2, blocks*blockBytes)
	if err := a.WriteAt(bg, fill(1, blocks*blockBytes), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
	other := fill(2, blockBytes)
	raced := false
	restore := thinpool.SetReadMappedHook(e.pool, func() {
		if raced {
			return
		}
		raced = true
		// The reader has looked block 0 up. Unmap it, commit, and let
		// volume 2 take the freed block (the only free one) and fill it.
		if err := a.Discard(bg, 0, blockBytes); err != nil {
			t.Error(err)
		}
		if err := e.pool.Commit(bg); err != nil {
			t.Error(err)
		}
		if err := b.WriteAt(bg, other, 0, false); err != nil {
			t.Error(err)
		}
	})
	defer restore()
	got := make([]byte, blockBytes)
	if err := a.ReadAt(bg, got, 0); err != nil {
		t.Fatal(err)
	}
	if !raced {
		t.Fatal("the hook did not run")
	}
	if bytes.Equal(got, other) {
		t.Fatal("volume 1 read volume 2's data")
	}
	if !bytes.Equal(got, make([]byte, blockBytes)) {
		t.Fatalf("read racing a discard returned %x..., want the discarded state (zeroes)", got[:16])
	}
	if n := e.pool.Stats().Thins[1].ReadRetries; n != 1 {
		t.Fatalf("%d read retries, want 1", n)
	}
}

// An abort frees the blocks its transaction provisioned. A write still on
// its way to one of them must land before another volume can be given the
// block, or it overwrites that volume's data.
func TestAbortWaitsForWritesToTheBlocksItFrees(t *testing.T) {
	const blockBytes = 64 << 10
	const blocks = 16
	e := newFileEnv(t, 16<<20, blocks*blockBytes, thinpool.Config{ErrorIfNoSpace: true})
	a, b := e.thin(1, blocks*blockBytes), e.thin(2, blocks*blockBytes)
	if err := a.WriteAt(bg, fill(1, (blocks-1)*blockBytes), blockBytes, false); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
	// Volume 1 takes the last free block, uncommitted.
	if err := a.WriteAt(bg, fill(2, blockBytes), 0, false); err != nil {
		t.Fatal(err)
	}
	reached, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	restore := thinpool.SetWriteMappedHook(e.pool, func() {
		once.Do(func() {
			close(reached)
			<-proceed
		})
	})
	defer restore()
	written := make(chan error, 1)
	go func() { written <- a.WriteAt(bg, fill(3, blockBytes), 0, false) }()
	<-reached
	aborted := make(chan error, 1)
	go func() { aborted <- e.pool.Abort() }()
	select {
	case err := <-aborted:
		// The abort did not wait for the write: let the block go to
		// volume 2 before the write lands, as a busy pool might.
		if err != nil {
			t.Fatal(err)
		}
		if err := b.WriteAt(bg, fill(4, blockBytes), 0, false); err != nil {
			t.Fatal(err)
		}
		close(proceed)
	case <-time.After(200 * time.Millisecond):
		close(proceed)
		if err := <-aborted; err != nil {
			t.Fatal(err)
		}
		if err := b.WriteAt(bg, fill(4, blockBytes), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	got := make([]byte, blockBytes)
	if err := b.ReadAt(bg, got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, fill(4, blockBytes)) {
		t.Fatal("a write to a block the abort freed landed on another volume's data")
	}
}
