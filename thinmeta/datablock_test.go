package thinmeta

import (
	"errors"
	"testing"

	"github.com/thind-storage/thind/bm"
)

func TestDataBlockSizeRule(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes uint64
		ok    bool
	}{
		{"64 KiB, the smallest", 64 << 10, true},
		{"192 KiB, not a power of two", 192 << 10, true},
		{"1 GiB, the largest", 1 << 30, true},
		{"zero", 0, false},
		{"32 KiB, whole sectors short of 64 KiB", 32 << 10, false},
		{"96 KiB, not a multiple of 64 KiB", 96 << 10, false},
		{"64 KiB and a byte, not whole sectors", 64<<10 + 1, false},
		{"1 GiB and 64 KiB, over the largest", 1<<30 + 64<<10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckDataBlockSize(tc.bytes)
			var se *DataBlockSizeError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && (!errors.As(err, &se) || se.Bytes != tc.bytes):
				t.Fatalf("got %v, want a *DataBlockSizeError naming %d bytes", err, tc.bytes)
			}
		})
	}
}

// TestOpenRefusesABadDataBlockSize writes a superblock whose data block
// size no dm-thin pool can have, with a valid checksum: Open must refuse it
// as corruption rather than serve blocks of that size.
func TestOpenRefusesABadDataBlockSize(t *testing.T) {
	dev := bm.NewMemDevice(256 * bm.BlockSize)
	p, err := Create(dev, dev.NrBlocks(), 128, 1024, Options{}) //pooltest:the superblock is damaged on purpose
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	block := make([]byte, bm.BlockSize)
	if _, err := dev.ReadAt(block, 0); err != nil {
		t.Fatal(err)
	}
	s := DecodeSuperblock(block)
	s.DataBlockSize = 192 + 1
	s.Encode(block)
	SuperblockValidator.Prepare(block, 0)
	if _, err := dev.WriteAt(block, 0); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dev, dev.NrBlocks(), Options{}) //pooltest:the superblock is damaged on purpose
	var se *DataBlockSizeError
	if !errors.As(err, &se) || !errors.Is(err, bm.ErrCorruption) || se.Bytes != 193*512 {
		t.Fatalf("Open = %v, want a *DataBlockSizeError for 193 sectors that is corruption", err)
	}
	if _, err := Create(bm.NewMemDevice(256*bm.BlockSize), 256, 192, 1024, Options{}); !errors.As(err, &se) { //pooltest:Create must refuse, so no pool is made
		t.Fatalf("Create with 96 KiB blocks = %v, want a *DataBlockSizeError", err)
	}
}
