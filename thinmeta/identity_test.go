package thinmeta

import (
	"testing"

	"github.com/thind-storage/thind/bm"
)

// The uuid set on a pool survives later commits and a reopen, as Linux
// keeps it, and ReadSuperblock sees it without opening the pool.
func TestTheUUIDSurvivesCommitsAndReopening(t *testing.T) {
	dev := bm.NewMemDevice(16 << 20)
	p, err := Create(dev, dev.NrBlocks(), 128, 1024, Options{}) //pooltest:thinmeta's own tests cannot import pooltest (it imports thinmeta)
	if err != nil {
		t.Fatal(err)
	}
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
	sb, err := ReadSuperblock(dev)
	if err != nil {
		t.Fatal(err)
	}
	if sb.UUID != id || sb.TransactionID != p.TransactionID() {
		t.Errorf("ReadSuperblock: uuid %x txid %d", sb.UUID, sb.TransactionID)
	}
	q, err := Open(dev, dev.NrBlocks(), Options{}) //pooltest:thinmeta's own tests cannot import pooltest (it imports thinmeta)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.UUID() != id {
		t.Errorf("reopened: uuid %x, want %x", q.UUID(), id)
	}
}

func TestReadSuperblockRefusesADamagedBlock(t *testing.T) {
	dev := bm.NewMemDevice(16 << 20)
	p, err := Create(dev, dev.NrBlocks(), 128, 1024, Options{}) //pooltest:thinmeta's own tests cannot import pooltest (it imports thinmeta)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if _, err := dev.WriteAt([]byte{0xff}, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSuperblock(dev); err == nil {
		t.Error("a superblock with a bad checksum was read")
	}
}
