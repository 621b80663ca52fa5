package thinmeta

import (
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
