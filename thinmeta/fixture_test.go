package thinmeta

import (
	"bytes"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/fixture"
)

func loadImage(t testing.TB, name string) *bm.MemDevice {
	t.Helper()
	img := fixture.Meta(t, name)
	dev := bm.NewMemDevice(int64(len(img)))
	dev.WriteAt(img, 0)
	dev.Sync()
	return dev
}

func readAll(t *testing.T, d *bm.MemDevice) []byte {
	buf := make([]byte, d.Size())
	if _, err := d.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	return buf
}

// TestFormatMatchesLinux formats an 8 MiB metadata device for 1024 data
// blocks of 64 KiB, as Linux 6.1 did to make kernel-fresh, and compares
// every block with the kernel's image.
func TestFormatMatchesLinux(t *testing.T) {
	want := readAll(t, loadImage(t, "kernel-fresh"))
	dev := bm.NewMemDevice(int64(len(want)))
	p, err := Create(dev, uint64(len(want))/bm.BlockSize, 128, 1024, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = p
	got := readAll(t, dev)
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
