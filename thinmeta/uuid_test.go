package thinmeta_test

import (
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/thinmeta"
)

// The uuid set on a pool survives later commits and a reopen, as Linux
// keeps it, and ReadSuperblock sees it without opening the pool.
func TestTheUUIDSurvivesCommitsAndReopening(t *testing.T) {
	dev := bm.NewMemDevice(16 << 20)
	p := pooltest.CreateMetadata(t, dev, dev.NrBlocks(), 128, 1024, thinmeta.Options{})
	if u := p.UUID(); u != ([16]byte{}) {
		t.Fatalf("a new pool has uuid %x, want zero (as Linux formats it)", u)
	}
	id := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	if err := p.SetUUID(id); err != nil {
		t.Fatal(err)
	}
	if err := p.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	sb, err := thinmeta.ReadSuperblock(dev)
	if err != nil {
		t.Fatal(err)
	}
	if sb.UUID != id || sb.TransactionID != p.TransactionID() {
		t.Errorf("ReadSuperblock: uuid %x txid %d", sb.UUID, sb.TransactionID)
	}
	q := pooltest.OpenMetadata(t, dev, dev.NrBlocks(), thinmeta.Options{})
	if q.UUID() != id {
		t.Errorf("reopened: uuid %x, want %x", q.UUID(), id)
	}
}
