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
