package thinpool_test

import (
	"bytes"
	"testing"

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
