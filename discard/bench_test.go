package discard

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkSplit measures the per-request arithmetic, for a power-of-two
// and a non-power-of-two block size; it must not allocate.
func BenchmarkSplit(b *testing.B) {
	for _, bs := range []uint64{64 << 10, 192 << 10} {
		b.Run(fmt.Sprintf("bs=%d", bs), func(b *testing.B) {
			g, err := NewGeometry(bs, 1<<40)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			var sink uint64
			for i := range b.N {
				off := uint64(i) * 4096 % (1<<40 - 1<<20)
				s, err := g.Split(off, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				for c := range s.Blocks.Chunks() {
					sink += c.Len()
				}
			}
			_ = sink
		})
	}
}

// BenchmarkExtentBuilder feeds freed blocks in ascending or random order
// and builds the extents; with the builder reused it must not allocate.
func BenchmarkExtentBuilder(b *testing.B) {
	const blocks = 1024
	for _, order := range []string{"ascending", "random"} {
		b.Run("order="+order, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			in := make([]uint64, blocks)
			for i := range in {
				in[i] = uint64(i*3/2) + 1<<20 // runs of two with gaps
			}
			if order == "random" {
				rng.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
			}
			eb := ExtentBuilder{MaxLen: MaxChunk, Aligned: true}
			var out []ByteRange
			b.SetBytes(blocks * 8)
			b.ReportAllocs()
			for range b.N {
				eb.Reset()
				for _, x := range in {
					eb.Add(x)
				}
				out, _ = eb.AppendBytes(out[:0], 64<<10)
			}
		})
	}
}
