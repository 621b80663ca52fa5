package thinmeta

import (
	"testing"

	"github.com/thind-storage/thind/bm"
)

func TestReadSuperblockRefusesADamagedBlock(t *testing.T) {
	dev := bm.NewMemDevice(16 << 20)
	p, err := Create(dev, dev.NrBlocks(), 128, 1024, Options{}) //pooltest:the superblock is damaged on purpose
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
