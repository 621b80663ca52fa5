package thinmeta_test

import (
	"errors"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/thinmeta"
)

// A Finder keeps its device's view between lookups; it must still follow
// the device through creation, deletion, re-creation and an abort, never
// answering from a view the pool no longer publishes.
func TestFinderFollowsTheDevice(t *testing.T) {
	dev := bm.NewMemDevice(16 << 20)
	p := pooltest.CreateMetadata(t, dev, dev.NrBlocks(), 128, 1024, thinmeta.Options{})
	f := p.Finder(7)
	expect := func(step string, want uint64, wantErr error) {
		t.Helper()
		for range 2 { // the second lookup answers from the kept view
			l, err := f.Find(3)
			if !errors.Is(err, wantErr) || (err == nil && l.DataBlock != want) {
				t.Fatalf("%s: got block %d, %v; want block %d, %v", step, l.DataBlock, err, want, wantErr)
			}
		}
	}
	mapNew := func() uint64 {
		b, err := p.AllocDataBlock()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Insert(7, 3, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	expect("before the device exists", 0, thinmeta.ErrNoDevice)
	if err := p.CreateThin(7); err != nil {
		t.Fatal(err)
	}
	expect("new device", 0, thinmeta.ErrNotMapped)
	first := mapNew()
	expect("mapped", first, nil)
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteThin(7); err != nil {
		t.Fatal(err)
	}
	expect("deleted", 0, thinmeta.ErrNoDevice)
	if err := p.CreateThin(7); err != nil {
		t.Fatal(err)
	}
	expect("created again", 0, thinmeta.ErrNotMapped)
	if err := p.Abort(); err != nil {
		t.Fatal(err)
	}
	expect("after the abort brought the committed device back", first, nil)
}
