package spacemap

import (
	"bytes"
	"testing"

	"github.com/thind-storage/thind/bm"
)

// FuzzIndexAndRoot round-trips index entries, the metadata index block
// and space map roots from arbitrary bytes.
func FuzzIndexAndRoot(f *testing.F) {
	f.Add(make([]byte, 64), uint64(3))
	f.Add(bytes.Repeat([]byte{0xa5}, bm.BlockSize), uint64(255))
	f.Fuzz(func(t *testing.T, data []byte, n uint64) {
		if len(data) >= RootSize {
			r, err := DecodeRoot(data)
			if err != nil {
				t.Fatal(err)
			}
			var b [RootSize]byte
			r.Encode(b[:])
			if !bytes.Equal(b[:], data[:RootSize]) {
				t.Fatal("root does not round-trip")
			}
		} else if _, err := DecodeRoot(data); err == nil {
			t.Fatal("short root accepted")
		}
		if len(data) >= indexEntrySize {
			e := DecodeIndexEntry(data)
			var b [indexEntrySize]byte
			e.Encode(b[:])
			if DecodeIndexEntry(b[:]) != e {
				t.Fatal("index entry does not round-trip")
			}
		}
		block := make([]byte, bm.BlockSize)
		copy(block, data)
		entries, err := DecodeMetadataIndex(block, n)
		if n > MaxMetadataBitmaps {
			if err == nil {
				t.Fatalf("%d entries accepted", n)
			}
			return
		}
		if err != nil || uint64(len(entries)) != n {
			t.Fatalf("%d entries: %v", len(entries), err)
		}
	})
}

// FuzzBitmap compares the 2-bit bitmap operations with a plain model on
// arbitrary blocks: get after set, and the free search.
func FuzzBitmap(f *testing.F) {
	f.Add(make([]byte, bm.BlockSize), uint16(5), uint8(2), uint16(0), uint16(100))
	f.Add(bytes.Repeat([]byte{0xff}, bm.BlockSize), uint16(16319), uint8(0), uint16(16000), uint16(16320))
	f.Fuzz(func(t *testing.T, data []byte, e uint16, v uint8, lo, hi uint16) {
		block := make([]byte, bm.BlockSize)
		copy(block, data)
		entry := uint64(e) % EntriesPerBlock
		val := uint32(v % 4)
		SetBitmapEntry(block, entry, val)
		if got := BitmapEntry(block, entry); got != val {
			t.Fatalf("entry %d: set %d, got %d", entry, val, got)
		}
		begin, end := uint64(lo)%(EntriesPerBlock+1), uint64(hi)%(EntriesPerBlock+1)
		got, ok := bitmapFindFree(block, begin, end)
		want, wantOK := uint64(0), false
		for i := begin; i < end; i++ {
			if BitmapEntry(block, i) == 0 {
				want, wantOK = i, true
				break
			}
		}
		if ok != wantOK || got != want {
			t.Fatalf("find free in [%d,%d): %d %v, model %d %v", begin, end, got, ok, want, wantOK)
		}
	})
}
