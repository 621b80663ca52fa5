package discard

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
)

// checkExtents compares the builder's extents with the set of blocks fed
// (set[b] true for each) over blocks [0, len(set)):
//
//   - extents are ascending, non-empty and disjoint, and cover exactly the
//     set;
//   - each is at most MaxLen, and with Aligned crosses no multiple of it;
//   - extents touch only where MaxLen forced a cut, so they are maximal.
func checkExtents(b *ExtentBuilder, set []bool) error {
	ext := b.Extents()
	covered := make([]bool, len(set))
	for i, r := range ext {
		switch {
		case r.Empty():
			return fmt.Errorf("empty extent %v", r)
		case r.End > uint64(len(set)):
			return fmt.Errorf("extent %v past any block fed", r)
		case i > 0 && r.Begin < ext[i-1].End:
			return fmt.Errorf("extent %v overlaps or precedes %v", r, ext[i-1])
		case b.MaxLen != 0 && r.Len() > b.MaxLen:
			return fmt.Errorf("extent %v longer than %d", r, b.MaxLen)
		case b.MaxLen != 0 && b.Aligned && r.Begin/b.MaxLen != (r.End-1)/b.MaxLen:
			return fmt.Errorf("extent %v crosses a multiple of %d", r, b.MaxLen)
		}
		if i > 0 && r.Begin == ext[i-1].End {
			prev := ext[i-1]
			cutByLen := b.MaxLen != 0 && !b.Aligned && prev.Len() == b.MaxLen
			cutByAlign := b.MaxLen != 0 && b.Aligned && r.Begin%b.MaxLen == 0
			if !cutByLen && !cutByAlign {
				return fmt.Errorf("extents %v and %v touch but were not merged", prev, r)
			}
		}
		for x := r.Begin; x < r.End; x++ {
			covered[x] = true
		}
	}
	for x := range set {
		if set[x] != covered[x] {
			return fmt.Errorf("block %d fed=%v but covered=%v", x, set[x], covered[x])
		}
	}
	return nil
}

// TestExtentBuilderMatchesBlockModel feeds random blocks and ranges, in
// order, shuffled and with repeats, and checks the extents against the set
// of blocks fed, under each cutting option.
func TestExtentBuilderMatchesBlockModel(t *testing.T) {
	seed := randtest.Seed(t)
	rng := randtest.FromSeed(seed)
	for iter := range 3000 {
		size := 1 + rng.IntN(300)
		set := make([]bool, size)
		var feed []BlockRange
		for range rng.IntN(60) {
			begin := uint64(rng.IntN(size))
			end := min(uint64(size), begin+uint64(rng.IntN(12)))
			feed = append(feed, BlockRange{begin, end})
			for x := begin; x < end; x++ {
				set[x] = true
			}
		}
		if iter%2 == 0 { // ascending, as a scan of freed blocks would give
			slices.SortFunc(feed, func(a, b BlockRange) int { return cmp.Compare(a.Begin, b.Begin) })
		}
		for _, opt := range []ExtentBuilder{{}, {MaxLen: 1 + uint64(rng.IntN(9))}, {MaxLen: 1 + uint64(rng.IntN(9)), Aligned: true}} {
			b := opt
			for _, r := range feed {
				if r.Len() == 1 && rng.IntN(2) == 0 {
					b.Add(r.Begin)
				} else {
					b.AddRange(r)
				}
			}
			if err := checkExtents(&b, set); err != nil {
				t.Fatalf("seed %d, iteration %d, MaxLen %d aligned %v, fed %v: %v", seed, iter, b.MaxLen, b.Aligned, feed, err)
			}
			// Reset keeps the options and forgets the blocks.
			b.Reset()
			if len(b.Extents()) != 0 || b.MaxLen != opt.MaxLen {
				t.Fatalf("seed %d: Reset left %v, MaxLen %d", seed, b.Extents(), b.MaxLen)
			}
		}
	}
}

func TestExtentBuilderBytes(t *testing.T) {
	var b ExtentBuilder
	b.AddRange(BlockRange{1<<64 - 3, 1<<64 - 1})
	if _, err := b.AppendBytes(nil, minBlockSize); err == nil {
		t.Fatal("AppendBytes of blocks near 2^64 did not report the overflow")
	}
	b.Reset()
	b.Add(1<<64 - 1) // has no [b, b+1) and is ignored rather than wrapped
	if ext := b.Extents(); len(ext) != 0 {
		t.Fatalf("extents %v, want none", ext)
	}
}

// FuzzExtentBuilder decodes its input as blocks to feed (two bytes each,
// the top bit choosing a range of up to eight blocks) and checks the
// extents against the block model.
func FuzzExtentBuilder(f *testing.F) {
	f.Add([]byte{0, 5, 0, 6, 0, 1, 0x80, 9}, uint8(0), false)
	f.Add([]byte{0x81, 0xff, 0, 3, 1, 0, 0, 2}, uint8(4), true)
	f.Fuzz(func(t *testing.T, data []byte, maxLen uint8, aligned bool) {
		b := ExtentBuilder{MaxLen: uint64(maxLen), Aligned: aligned}
		set := make([]bool, 1<<12)
		for ; len(data) >= 2; data = data[2:] {
			v := binary.BigEndian.Uint16(data)
			begin := uint64(v & 0x0fff)
			n := uint64(1)
			if v&0x8000 != 0 {
				n = 1 + uint64(v>>12&0x7)
			}
			end := min(begin+n, uint64(len(set)))
			b.AddRange(BlockRange{begin, end})
			for x := begin; x < end; x++ {
				set[x] = true
			}
		}
		if err := checkExtents(&b, set); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzChunks checks chunking of any block range, including the last
// windows of the 64-bit space.
func FuzzChunks(f *testing.F) {
	f.Add(uint64(0), uint64(1025))
	f.Add(uint64(1000), uint64(3100))
	f.Add(uint64(1<<64-1500), uint64(1<<64-1))
	f.Fuzz(func(t *testing.T, begin, end uint64) {
		r := BlockRange{begin, end}
		if err := checkChunksOf(r); err != nil {
			t.Fatalf("chunks of %v: %v", r, err)
		}
		c, rest := r.NextChunk()
		if r.Empty() && (!c.Empty() || !rest.Empty()) {
			t.Fatalf("NextChunk of empty %v = %v, %v", r, c, rest)
		}
	})
}

// TestExtentBuilderRandomOrderEqualsSorted is the metamorphic check: the
// order blocks arrive in must not change the extents.
func TestExtentBuilderRandomOrderEqualsSorted(t *testing.T) {
	seed := randtest.Seed(t)
	rng := randtest.FromSeed(seed)
	blocks := make([]uint64, 500)
	for i := range blocks {
		blocks[i] = uint64(rng.IntN(2000))
	}
	var sorted, shuffled ExtentBuilder
	sortedBlocks := slices.Clone(blocks)
	slices.Sort(sortedBlocks)
	for _, x := range sortedBlocks {
		sorted.Add(x)
	}
	rng.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
	for _, x := range blocks {
		shuffled.Add(x)
	}
	if a, b := sorted.Extents(), shuffled.Extents(); !slices.Equal(a, b) {
		t.Fatalf("seed %d: sorted input gave %v, shuffled %v", seed, a, b)
	}
}
