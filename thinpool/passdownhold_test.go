package thinpool_test

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/thind-storage/thind/thinpool"
)

// TestPassdownHoldsFreedBlocksUntilPunched: the commit that frees a
// discarded block punches it without the transaction lock, so writes go
// on meanwhile, but no other volume is given the block before its hole is
// punched: a write there would lose its data to the punch. The pool has
// two free blocks after the discard's commit, the freed one and one
// other: while the punch is held up, a write takes the other one at once
// and the next write waits; once the punch is done it gets the freed
// block, and both keep their data.
func TestPassdownHoldsFreedBlocksUntilPunched(t *testing.T) {
	const blockBytes = 64 << 10
	const blocks = 16
	e := newFileEnv(t, 16<<20, blocks*blockBytes, thinpool.Config{CommitInterval: time.Hour})
	a, b := e.thin(1, blocks*blockBytes), e.thin(2, blocks*blockBytes)
	if err := a.WriteAt(bg, fill(1, (blocks-1)*blockBytes), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
	allocated := allocatedBytes(t, e.dataPath)

	punching, resume := make(chan struct{}), make(chan struct{})
	restore := thinpool.SetPassdownHook(e.pool, func() {
		close(punching)
		<-resume
	})
	defer restore()
	var once sync.Once
	release := func() { once.Do(func() { close(resume) }) }
	defer release() // a failing test must not leave the committer stuck
	discarded := make(chan error, 1)
	go func() { discarded <- a.Discard(bg, 0, blockBytes) }()
	select {
	case <-punching:
	case err := <-discarded:
		t.Fatalf("discard returned (%v) before its passdown", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the discard's commit never reached its passdown")
	}

	// The transaction lock is free: volume 2 provisions the other free
	// block while the punch waits.
	first := fill(2, blockBytes)
	wrote := make(chan error, 1)
	go func() { wrote <- b.WriteAt(bg, first, 0, false) }()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write to a free block waited for the passdown's punch")
	}
	if got := e.pool.Metadata().FreeDataBlocks(); got != 0 {
		t.Fatalf("%d data blocks allocatable while the freed one waits for its punch, want 0", got)
	}
	// The only block left is the held one: this write must wait.
	second := fill(3, blockBytes)
	go func() { wrote <- b.WriteAt(bg, second, blockBytes, false) }()
	select {
	case err := <-wrote:
		t.Fatalf("volume 2 was given the discarded block before its punch (write returned %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	select {
	case err := <-discarded:
		t.Fatalf("discard returned (%v) before its punch", err)
	default:
	}
	if now := allocatedBytes(t, e.dataPath); now < allocated {
		t.Fatalf("the data file shrank from %d to %d bytes before the punch", allocated, now)
	}

	release()
	for name, ch := range map[string]chan error{"discard": discarded, "write to the freed block": wrote} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not return after the punch", name)
		}
	}
	checkZeroes(t, a, 0, blockBytes)
	for i, want := range [][]byte{first, second} {
		got := make([]byte, blockBytes)
		if err := b.ReadAt(bg, got, uint64(i)*blockBytes); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("volume 2 block %d lost its data: first bytes %x", i, got[:16])
		}
	}
	e.commitAndCheck()
}
