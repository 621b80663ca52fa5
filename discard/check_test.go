package discard

import (
	"fmt"
)

// checkSplit verifies the invariants of a split of [off, off+n) with block
// size bs on a device of dev bytes, by interval arithmetic rather than
// byte by byte, so it works at real sizes:
//
//   - Head, Blocks and Tail tile the range exactly, in that order;
//   - Head and Tail each lie within one block and cover none whole;
//   - Blocks are whole blocks of the device;
//   - every block the range covers whole is in Blocks.
func checkSplit(bs, dev, off, n uint64, s Split) error {
	end := off + n
	blocksOff, blocksEnd := s.Blocks.Begin*bs, min(s.Blocks.End*bs, dev)
	if s.Blocks.Empty() {
		blocksOff, blocksEnd = s.Head.End(), s.Head.End()
	}
	switch {
	case n == 0:
		if !s.Empty() {
			return fmt.Errorf("empty request gave a non-empty split %+v", s)
		}
		return nil
	case s.Head.Off != off:
		return fmt.Errorf("head starts at %d, not at the range start %d", s.Head.Off, off)
	case !s.Blocks.Empty() && blocksOff != s.Head.End():
		return fmt.Errorf("blocks start at byte %d, not where the head ends (%d)", blocksOff, s.Head.End())
	case !s.Tail.Empty() && s.Tail.Off != blocksEnd:
		return fmt.Errorf("tail starts at %d, not where the blocks end (%d)", s.Tail.Off, blocksEnd)
	case s.Tail.Empty() && blocksEnd != end:
		return fmt.Errorf("no tail, but the blocks end at byte %d, not at the range end %d", blocksEnd, end)
	case !s.Tail.Empty() && s.Tail.End() != end:
		return fmt.Errorf("tail ends at %d, not at the range end %d", s.Tail.End(), end)
	case s.Blocks.End > divUp(dev, bs):
		return fmt.Errorf("blocks %v run past the device's %d blocks", s.Blocks, divUp(dev, bs))
	}
	for _, p := range []struct {
		name string
		r    ByteRange
	}{{"head", s.Head}, {"tail", s.Tail}} {
		if p.r.Empty() {
			continue
		}
		blk := p.r.Off / bs
		if (p.r.End()-1)/bs != blk {
			return fmt.Errorf("%s %v spans more than one block", p.name, p.r)
		}
		if p.r.Off == blk*bs && p.r.End() == min((blk+1)*bs, dev) {
			return fmt.Errorf("%s %v covers block %d whole", p.name, p.r, blk)
		}
	}
	return nil
}

// checkChunks verifies that chunks tile r in order, each at most MaxChunk
// blocks, none crossing a MaxChunk boundary, and each ending either at r's
// end or at a boundary (so there are no needless cuts).
func checkChunks(r BlockRange, chunks []BlockRange) error {
	next := r.Begin
	for _, c := range chunks {
		switch {
		case c.Begin != next:
			return fmt.Errorf("chunk %v does not start where the last ended (%d)", c, next)
		case c.Empty():
			return fmt.Errorf("empty chunk %v", c)
		case c.Len() > MaxChunk:
			return fmt.Errorf("chunk %v longer than %d", c, MaxChunk)
		case c.Begin/MaxChunk != (c.End-1)/MaxChunk:
			return fmt.Errorf("chunk %v crosses a %d-block boundary", c, MaxChunk)
		case c.End != r.End && c.End%MaxChunk != 0:
			return fmt.Errorf("chunk %v cut short of a boundary", c)
		}
		next = c.End
	}
	if !r.Empty() && next != r.End {
		return fmt.Errorf("chunks end at %d, not at %d", next, r.End)
	}
	return nil
}

func collectChunks(r BlockRange) []BlockRange {
	var out []BlockRange
	for c := range r.Chunks() {
		out = append(out, c)
	}
	return out
}

// checkChunksOf checks the chunks of r, or for a range too long to walk,
// of its first and last few thousand blocks.
func checkChunksOf(r BlockRange) error {
	const walk = 1 << 16
	if r.Len() <= walk {
		return checkChunks(r, collectChunks(r))
	}
	for _, part := range []BlockRange{{r.Begin, r.Begin + walk/2}, {r.End - walk/2, r.End}} {
		if err := checkChunks(part, collectChunks(part)); err != nil {
			return err
		}
	}
	return nil
}
