package discard

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/thind-storage/thind/internal/scripttest"
)

// TestDiscardScripts runs transcripts of splits, write-zeroes plans and
// extent building. Sizes take K, M, G, T suffixes (powers of 1024).
// Commands:
//
//	geometry bs=SIZE dev=SIZE
//	split off=SIZE len=SIZE
//	zeroes off=SIZE len=SIZE [no-hole]
//	chunks range=(B,E)
//	extents [max=N] [aligned] [bs=SIZE]    input: blocks "7" or ranges "8-12", any order
func TestDiscardScripts(t *testing.T) {
	scripttest.Walk(t, "testdata/scripts", func(t *testing.T) scripttest.Handler {
		var g Geometry
		return func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "geometry":
				var err error
				g, err = NewGeometry(scripttest.Size(t, d, "bs"), scripttest.Size(t, d, "dev"))
				if err != nil {
					return fmt.Sprintf("error: %v\n", err)
				}
				return fmt.Sprintf("block size %d, device %d bytes, %d blocks\n", g.BlockSize(), g.DevSize(), g.Blocks())
			case "split":
				off, n := scripttest.Size(t, d, "off"), scripttest.Size(t, d, "len")
				s, err := g.Split(off, n)
				if err != nil {
					return fmt.Sprintf("error: %v\n", err)
				}
				return formatSplit(g, s.Head, s.Blocks, s.Tail) + formatChunks(s.Blocks)
			case "zeroes":
				p, err := g.WriteZeroes(scripttest.Size(t, d, "off"), scripttest.Size(t, d, "len"), d.HasArg("no-hole"))
				if err != nil {
					return fmt.Sprintf("error: %v\n", err)
				}
				return fmt.Sprintf("unmap     %v\nprovision %v\n", p.Unmap, p.Provision) +
					formatSplit(g, p.Head, BlockRange{}, p.Tail)
			case "chunks":
				var r BlockRange
				d.ScanArgs(t, "range", &r.Begin, &r.End)
				return formatChunks(r)
			case "extents":
				return runExtents(t, d)
			default:
				t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
				return ""
			}
		}
	})
}

// formatSplit prints the edges with the block each lies in; an empty
// blocks range is left out, for write-zeroes plans which print their own.
func formatSplit(g Geometry, head ByteRange, blocks BlockRange, tail ByteRange) string {
	var b strings.Builder
	edge := func(name string, r ByteRange) {
		if r.Empty() {
			fmt.Fprintf(&b, "%-9s none\n", name)
			return
		}
		fmt.Fprintf(&b, "%-9s %v in block %d\n", name, r, g.Block(r.Off))
	}
	edge("head", head)
	if blocks != (BlockRange{}) {
		fmt.Fprintf(&b, "%-9s %v\n", "blocks", blocks)
	}
	edge("tail", tail)
	return b.String()
}

func formatChunks(r BlockRange) string {
	var parts []string
	for c := range r.Chunks() {
		parts = append(parts, c.String())
	}
	if len(parts) == 0 {
		return "chunks    none\n"
	}
	return "chunks    " + strings.Join(parts, " ") + "\n"
}

func runExtents(t *testing.T, d *datadriven.TestData) string {
	var b ExtentBuilder
	d.MaybeScanArgs(t, "max", &b.MaxLen)
	b.Aligned = d.HasArg("aligned")
	for _, f := range strings.Fields(d.Input) {
		lo, hi, isRange := strings.Cut(f, "-")
		begin, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			t.Fatalf("%s: bad block %q", d.Pos, f)
		}
		if !isRange {
			b.Add(begin)
			continue
		}
		end, err := strconv.ParseUint(hi, 10, 64)
		if err != nil {
			t.Fatalf("%s: bad range %q", d.Pos, f)
		}
		b.AddRange(BlockRange{begin, end})
	}
	var parts []string
	for _, r := range b.Extents() {
		parts = append(parts, r.String())
	}
	if len(parts) == 0 {
		return "none\n"
	}
	out := strings.Join(parts, " ") + "\n"
	if d.HasArg("bs") {
		brs, err := b.AppendBytes(nil, scripttest.Size(t, d, "bs"))
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		parts = parts[:0]
		for _, r := range brs {
			parts = append(parts, r.String())
		}
		out += "bytes " + strings.Join(parts, " ") + "\n"
	}
	return out
}
