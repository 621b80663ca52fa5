package thinpool_test

import (
	"bytes"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/thinpool"
)

func fill(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := randtest.Stream(seed, seed)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestReadWriteSnapshotDiscard(t *testing.T) {
	e := newFileEnv(t, 16<<20, 256<<20, thinpool.Config{})
	const size = 64 << 20
	a := e.thin(1, size)
	buf := make([]byte, size)
	// Unprovisioned space reads as zeroes and maps nothing.
	if err := a.ReadAt(bg, buf[:1<<20], 5<<20); err != nil || !bytes.Equal(buf[:1<<20], make([]byte, 1<<20)) {
		t.Fatalf("fresh read: %v", err)
	}
	// A partial write provisions one block, zeroing the rest of it.
	data := fill(1, 5000)
	if err := a.WriteAt(bg, data, 70000, false); err != nil {
		t.Fatal(err)
	}
	if err := a.ReadAt(bg, buf[:128<<10], 0); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 128<<10)
	copy(want[70000:], data)
	if !bytes.Equal(buf[:128<<10], want) {
		t.Fatal("partial write read back wrong")
	}
	if m, _ := e.md.MappedBlocks(1); m != 1 {
		t.Fatalf("%d blocks mapped, want 1", m)
	}
	// Snapshot, then overwrite the origin: the snapshot keeps the old
	// bytes, the origin gets a block of its own.
	if err := e.pool.CreateSnap(bg, 2, 1); err != nil {
		t.Fatal(err)
	}
	s := e.thin(2, size)
	over := fill(2, 100)
	if err := a.WriteAt(bg, over, 70010, true); err != nil {
		t.Fatal(err)
	}
	s.ReadAt(bg, buf[:128<<10], 0)
	if !bytes.Equal(buf[:128<<10], want) {
		t.Fatal("snapshot changed when its origin was written")
	}
	copy(want[70010:], over)
	a.ReadAt(bg, buf[:128<<10], 0)
	if !bytes.Equal(buf[:128<<10], want) {
		t.Fatal("origin lost its write")
	}
	st := e.pool.Stats()
	if st.Thins[1].SharingBroken != 1 {
		t.Fatalf("sharing broken %d times, want 1", st.Thins[1].SharingBroken)
	}
	// Discard the origin's block: it reads as zeroes, the snapshot keeps
	// its copy.
	if err := a.Discard(bg, 65536, 65536); err != nil {
		t.Fatal(err)
	}
	a.ReadAt(bg, buf[:128<<10], 0)
	if !bytes.Equal(buf[:128<<10], make([]byte, 128<<10)) {
		t.Fatal("discarded block does not read as zeroes")
	}
	copy(want[70010:], data[10:110])
	s.ReadAt(bg, buf[:128<<10], 0)
	if !bytes.Equal(buf[:128<<10], want) {
		t.Fatal("snapshot lost its block when the origin discarded")
	}
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
}
