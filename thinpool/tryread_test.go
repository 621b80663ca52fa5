package thinpool_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/thinpool"
)

// TestTryReadAtAgreesWithReadAt checks the no-wait read a connection's
// reader serves itself: wherever it reads, it returns what ReadAt returns,
// and it refuses what would need waiting or another path: unmapped
// blocks, a run that breaks on the data device, a mapping the cache has
// dropped, a discarded block, a range past the end.
func TestTryReadAtAgreesWithReadAt(t *testing.T) {
	const bs, size = 64 << 10, 64 << 20
	e := newFileEnv(t, 8<<20, 256<<20, thinpool.Config{})
	th := e.thin(1, size)
	rng := randtest.New(t)
	// Blocks 0-15 written in order (one run on the data device), then
	// 20, 40 and 21: 20 and 21 neighbours in the volume, not on the data
	// device.
	for _, b := range []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 20, 40, 21} {
		buf := make([]byte, bs)
		fillRandom(rng, buf)
		if err := th.WriteAt(bg, buf, b*bs, false); err != nil {
			t.Fatal(err)
		}
	}
	served := 0
	for i := 0; i < 2000; i++ {
		off := rng.Uint64N(48 * bs)
		n := 1 + rng.IntN(64<<10)
		got, want := make([]byte, n), make([]byte, n)
		ok, err := th.TryReadAt(got, off)
		if err != nil {
			t.Fatalf("TryReadAt(%d, %d): %v", off, n, err)
		}
		if err := th.ReadAt(bg, want, off); err != nil {
			t.Fatal(err)
		}
		first, last := off/bs, (off+uint64(n)-1)/bs
		inRun := last <= 15 || (first == last && (first == 20 || first == 21 || first == 40))
		switch {
		case ok && !bytes.Equal(got, want):
			t.Fatalf("TryReadAt(%d, %d) differs from ReadAt", off, n)
		case ok && !inRun:
			t.Fatalf("TryReadAt(%d, %d) served blocks %d-%d, which are not one mapped run", off, n, first, last)
		case ok:
			served++
		}
	}
	if served == 0 {
		t.Fatal("TryReadAt served nothing")
	}
	buf := make([]byte, 4096)
	if ok, _ := th.TryReadAt(buf, 20*bs+bs-2048); ok {
		t.Error("TryReadAt served across blocks 20 and 21, which are not adjacent on the data device")
	}
	if err := th.Discard(bg, 3*bs, bs); err != nil {
		t.Fatal(err)
	}
	if ok, _ := th.TryReadAt(buf, 3*bs); ok {
		t.Error("TryReadAt served a discarded block")
	}
	if _, err := th.TryReadAt(buf, size); err == nil {
		t.Error("TryReadAt past the end: no error")
	}
	t.Logf("%d of 2000 random reads served without waiting", served)
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}
