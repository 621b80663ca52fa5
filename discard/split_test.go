package discard

import (
	"errors"
	"fmt"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
)

// TestSplitMatchesByteModel checks split against a byte-by-byte model, for
// every range of every small device with tiny blocks (the arithmetic does
// not care that real blocks are 64 KiB). The model marks each byte of the
// range whole or partial by asking whether every device byte of its block is
// in the range.
func TestSplitMatchesByteModel(t *testing.T) {
	cases := 0
	for bs := uint64(1); bs <= 9; bs++ {
		for dev := uint64(1); dev <= 40; dev++ {
			for off := uint64(0); off < dev; off++ {
				for n := uint64(1); off+n <= dev; n++ {
					if err := compareWithByteModel(bs, dev, off, n); err != nil {
						t.Fatalf("bs=%d dev=%d off=%d len=%d: %v", bs, dev, off, n, err)
					}
					cases++
				}
			}
		}
	}
	t.Logf("%d ranges checked byte by byte", cases)
}

func compareWithByteModel(bs, dev, off, n uint64) error {
	s := split(bs, dev, off, n)
	end := off + n
	whole := func(blk uint64) bool {
		return off <= blk*bs && min((blk+1)*bs, dev) <= end
	}
	for x := off; x < end; x++ {
		blk := x / bs
		inHead := x >= s.Head.Off && x < s.Head.End()
		inTail := x >= s.Tail.Off && x < s.Tail.End()
		inBlocks := blk >= s.Blocks.Begin && blk < s.Blocks.End
		places := 0
		for _, in := range []bool{inHead, inTail, inBlocks} {
			if in {
				places++
			}
		}
		switch {
		case places != 1:
			return fmt.Errorf("byte %d is in %d of head %v, blocks %v, tail %v", x, places, s.Head, s.Blocks, s.Tail)
		case whole(blk) != inBlocks:
			return fmt.Errorf("byte %d: block %d whole=%v but in blocks=%v (split %+v)", x, blk, whole(blk), inBlocks, s)
		case inHead && blk >= s.Blocks.Begin && !s.Blocks.Empty():
			return fmt.Errorf("head byte %d is not before the blocks %v", x, s.Blocks)
		case inTail && blk < s.Blocks.End && !s.Blocks.Empty():
			return fmt.Errorf("tail byte %d is not after the blocks %v", x, s.Blocks)
		}
	}
	return checkSplit(bs, dev, off, n, s)
}

// TestSplitRandomGeometries checks the invariants through the exported API
// at real sizes: block sizes of any multiple of 64 KiB up to 1 GiB (most
// not powers of two), devices up to MaxDevSize, ranges anywhere on them.
func TestSplitRandomGeometries(t *testing.T) {
	seed := randtest.Seed(t)
	rng := randtest.FromSeed(seed)
	for range 20000 {
		bs := minBlockSize * (1 + rng.Uint64N(maxBlockSize/minBlockSize))
		var dev uint64
		switch rng.IntN(3) {
		case 0: // a few blocks, often not a whole number of them
			dev = SectorSize * rng.Uint64N(8*bs/SectorSize)
		case 1: // a whole number of blocks
			dev = bs * rng.Uint64N(1<<20)
		default: // anything up to the limit
			dev = SectorSize * rng.Uint64N(MaxDevSize/SectorSize+1)
		}
		g, err := NewGeometry(bs, dev)
		if err != nil {
			t.Fatalf("seed %d: NewGeometry(%d, %d): %v", seed, bs, dev, err)
		}
		off := rng.Uint64N(dev + 1)
		n := rng.Uint64N(dev - off + 1)
		if rng.IntN(4) == 0 { // a short range near a block edge
			off = min(dev, (off/bs)*bs+rng.Uint64N(3)-1)
			n = min(dev-off, rng.Uint64N(2*bs))
		}
		s, err := g.Split(off, n)
		if err != nil {
			t.Fatalf("seed %d: Split(%d, %d) on bs=%d dev=%d: %v", seed, off, n, bs, dev, err)
		}
		if err := checkSplit(bs, dev, off, n, s); err != nil {
			t.Fatalf("seed %d: Split(%d, %d) on bs=%d dev=%d = %+v: %v", seed, off, n, bs, dev, s, err)
		}
		if err := checkChunksOf(s.Blocks); err != nil {
			t.Fatalf("seed %d: chunks of %v: %v", seed, s.Blocks, err)
		}
	}
}

func TestNewGeometryRejectsBadSizes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		bs, dev uint64
		want    error
	}{
		{"a zero block size", 0, 1 << 20, ErrBlockSize},
		{"a device size that is not a whole number of sectors", 64 << 10, 1<<20 + 100, ErrDevSize},
		{"a device size over the limit", 64 << 10, MaxDevSize + SectorSize, ErrDevSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewGeometry(tc.bs, tc.dev)
			var se *SizeError
			if !errors.Is(err, tc.want) || !errors.As(err, &se) {
				t.Fatalf("NewGeometry(%d, %d) = %v, want a *SizeError matching %v", tc.bs, tc.dev, err, tc.want)
			}
		})
	}
	for _, bs := range []uint64{64 << 10, 192 << 10, 1 << 30, 1<<30 - 64<<10} {
		if _, err := NewGeometry(bs, 0); err != nil {
			t.Errorf("NewGeometry(%d, 0) = %v, want a valid empty device", bs, err)
		}
	}
}

func TestSplitRejectsBadRanges(t *testing.T) {
	g, err := NewGeometry(64<<10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		off, len uint64
		want     error
	}{
		{"a range past the end", 1<<20 - 512, 1024, ErrOutOfRange},
		{"a range starting past the end", 1<<20 + 512, 512, ErrOutOfRange},
		{"an empty range past the end", 1<<20 + 1, 0, ErrOutOfRange},
		{"a range whose end overflows", 1 << 63, 1 << 63, ErrOverflow},
		{"a range ending at 2^64, whose end does not fit", 1<<64 - 512, 512, ErrOverflow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.Split(tc.off, tc.len)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var re *RangeError
			if !errors.As(err, &re) {
				t.Fatalf("%v is not a *RangeError", err)
			}
		})
	}
	t.Run("an empty range at the end is an empty split", func(t *testing.T) {
		s, err := g.Split(1<<20, 0)
		if err != nil || !s.Empty() {
			t.Fatalf("Split(end, 0) = %+v, %v; want an empty split", s, err)
		}
	})
}

// FuzzSplit feeds arbitrary geometries and ranges: Split must never panic,
// must refuse exactly the invalid ranges, and must otherwise satisfy every
// invariant, chunks included.
func FuzzSplit(f *testing.F) {
	f.Add(uint64(1), uint64(1<<20), uint64(0), uint64(1<<20))
	f.Add(uint64(3), uint64(1<<30+512), uint64(100), uint64(1<<30))
	f.Add(uint64(16384), uint64(MaxDevSize), uint64(MaxDevSize-1), uint64(1))
	f.Add(uint64(5), uint64(5*minBlockSize*2048), uint64(minBlockSize*5*1023+7), uint64(minBlockSize*5*3))
	f.Add(uint64(1), uint64(1<<20), uint64(1<<63), uint64(1<<63))
	f.Fuzz(func(t *testing.T, units, dev, off, n uint64) {
		bs := units * minBlockSize
		dev -= dev % SectorSize
		g, err := NewGeometry(bs, dev)
		if err != nil {
			if units >= 1 && units <= maxBlockSize/minBlockSize && dev <= MaxDevSize {
				t.Fatalf("NewGeometry(%d, %d) refused a valid geometry: %v", bs, dev, err)
			}
			return
		}
		s, err := g.Split(off, n)
		switch {
		case off > maxUint64-n:
			if !errors.Is(err, ErrOverflow) {
				t.Fatalf("Split(%d, %d) = %v, want ErrOverflow", off, n, err)
			}
			return
		case off+n > dev:
			if !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("Split(%d, %d) = %v, want ErrOutOfRange", off, n, err)
			}
			return
		case err != nil:
			t.Fatalf("Split(%d, %d) on bs=%d dev=%d: %v", off, n, bs, dev, err)
		}
		if err := checkSplit(bs, dev, off, n, s); err != nil {
			t.Fatalf("Split(%d, %d) on bs=%d dev=%d = %+v: %v", off, n, bs, dev, s, err)
		}
		if err := checkChunksOf(s.Blocks); err != nil {
			t.Fatalf("chunks of %v: %v", s.Blocks, err)
		}
	})
}
