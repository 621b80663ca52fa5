package thinmeta

import (
	"bytes"
	"testing"

	"github.com/thind-storage/thind/bm"
)

// FuzzSuperblock decodes arbitrary blocks: whatever passes the validator
// must re-encode to the same bytes (checksum included) and decode to the
// same value.
func FuzzSuperblock(f *testing.F) {
	for _, name := range []string{"kernel-small", "kernel-metasnap", "restored-100k", "corrupt-sb-magic"} {
		dev := loadImage(f, name)
		buf := make([]byte, bm.BlockSize)
		dev.ReadAt(buf, 0)
		f.Add(buf)
	}
	f.Add(make([]byte, bm.BlockSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		block := make([]byte, bm.BlockSize)
		copy(block, data)
		if SuperblockValidator.Check(block, 0) != nil {
			return
		}
		s := DecodeSuperblock(block)
		again := make([]byte, bm.BlockSize)
		copy(again[superblockUsedSize:], block[superblockUsedSize:])
		s.Encode(again)
		SuperblockValidator.Prepare(again, 0)
		if !bytes.Equal(again, block) {
			t.Fatalf("superblock does not re-encode to the same bytes")
		}
		if DecodeSuperblock(again) != s {
			t.Fatalf("superblock does not decode to the same value")
		}
	})
}

// FuzzDeviceDetails round-trips the 24-byte details value.
func FuzzDeviceDetails(f *testing.F) {
	f.Add(make([]byte, DeviceDetailsSize))
	f.Add(bytes.Repeat([]byte{0xff}, DeviceDetailsSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < DeviceDetailsSize {
			return
		}
		d := DecodeDeviceDetails(data)
		var b [DeviceDetailsSize]byte
		d.Encode(b[:])
		if !bytes.Equal(b[:], data[:DeviceDetailsSize]) || DecodeDeviceDetails(b[:]) != d {
			t.Fatal("details do not round-trip")
		}
	})
}
