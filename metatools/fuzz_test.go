package metatools

import (
	"bytes"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/fixture"
)

// FuzzImage patches a valid pool (restored-bs1024: superblock, space
// maps, two devices) with arbitrary bytes at an arbitrary place and runs
// every offline tool on it. Nothing may panic or hang; check must fail
// whenever dump or ls find damage; repair must either refuse or produce
// metadata that check passes.
func FuzzImage(f *testing.F) {
	// The seeds are the faults of the corrupt fixtures.
	f.Add(uint16(10), uint16(2049), []byte{0x00})    // node byte (checksum then stale)
	f.Add(uint16(0), uint16(32), []byte{0xbb})       // superblock magic
	f.Add(uint16(3), uint16(16), []byte{0, 0, 0})    // metadata bitmap
	f.Add(uint16(9), uint16(18), []byte{0xff})       // data bitmap
	f.Add(uint16(10), uint16(32), []byte{1, 0, 0})   // node keys
	f.Add(uint16(1), uint16(16), []byte{7, 0, 0, 0}) // metadata index
	base := fixture.Meta(f, "restored-bs1024")
	f.Fuzz(func(t *testing.T, block, offset uint16, patch []byte) {
		img := append([]byte(nil), base...)
		off := (int(block)%(len(img)/bm.BlockSize))*bm.BlockSize + int(offset)%bm.BlockSize
		copy(img[off:], patch)
		dev := bm.NewMemDevice(int64(len(img)))
		dev.WriteAt(img, 0)
		image, err := NewImage(dev, uint64(len(img))/bm.BlockSize)
		if err != nil {
			t.Fatal(err)
		}
		report := Check(image, CheckOptions{})
		var out bytes.Buffer
		dumpErr := Dump(image, &out, DumpOptions{})
		_, lsErr := Ls(image, LsOptions{})
		if (dumpErr != nil || lsErr != nil) && report.OK() {
			t.Fatalf("check passed an image that dump (%v) or ls (%v) rejects", dumpErr, lsErr)
		}
		repaired := bm.NewMemDevice(int64(len(img)))
		if _, err := Repair(image, repaired, uint64(len(img))/bm.BlockSize, RepairOptions{}); err != nil {
			return
		}
		again, _ := NewImage(repaired, uint64(len(img))/bm.BlockSize)
		if r := Check(again, CheckOptions{}); !r.OK() {
			var b bytes.Buffer
			r.WriteText(&b)
			t.Fatalf("repair produced invalid metadata:\n%s", b.String())
		}
	})
}
