package thinmeta_test

import (
	"bytes"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/fixture"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/thinmeta"
)

// TestFormatMatchesLinux formats an 8 MiB metadata device for 1024 data
// blocks of 64 KiB, as Linux 6.1 did to make kernel-fresh, and compares
// every block with the kernel's image.
func TestFormatMatchesLinux(t *testing.T) {
	want := fixture.Meta(t, "kernel-fresh")
	dev := bm.NewMemDevice(int64(len(want)))
	pooltest.CreateMetadata(t, dev, uint64(len(want))/bm.BlockSize, 128, 1024, thinmeta.Options{})
	got := make([]byte, dev.Size())
	if _, err := dev.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	for b := 0; b < len(want)/bm.BlockSize; b++ {
		w, g := want[b*bm.BlockSize:(b+1)*bm.BlockSize], got[b*bm.BlockSize:(b+1)*bm.BlockSize]
		if !bytes.Equal(w, g) {
			for i := range w {
				if w[i] != g[i] {
					t.Errorf("block %d differs first at byte %d: kernel %#x, thind %#x", b, i, w[i], g[i])
					break
				}
			}
		}
	}
}
