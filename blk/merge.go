package blk

import (
	"cmp"
	"slices"
)

// mergeLimits bound a merged backend call, like a queue's max_sectors and
// max_segments: a bigger call would hold its buffers and the backend for
// longer without doing more useful work per byte.
type mergeLimits struct {
	maxBytes int64
	maxSegs  int
}

// sortForMerge orders a plugged batch so that mergeable requests are
// neighbours: by operation, then by offset. The sort is stable, so
// requests at the same offset keep their submission order. Requests of a
// batch are in flight together, so reordering them is allowed; the kernel
// makes no ordering promise between requests in flight either.
func sortForMerge(cmds []*cmd) {
	slices.SortStableFunc(cmds, func(a, b *cmd) int {
		if a.op != b.op {
			return cmp.Compare(a.op, b.op)
		}
		return cmp.Compare(a.off, b.off)
	})
}

// mergeSorted turns a sorted batch into units: runs of requests of the same
// operation where each starts exactly where the previous one ends, within
// the limits. Overlapping requests never merge. The units are linked through
// cmd.next and their requests through cmd.merged. It returns the list, the
// number of units, and the number of requests merged into another's unit.
func mergeSorted(cmds []*cmd, lim mergeLimits) (head, tail *cmd, units, merges int) {
	var last *cmd // last request of the current unit (tail is its first)
	for _, c := range cmds {
		c.next, c.merged = nil, nil
		if tail != nil && canMerge(tail, last, c, lim) {
			last.merged = c
			last = c
			tail.ulen += c.n
			tail.ucount++
			tail.ufua = tail.ufua || c.fua
			merges++
			continue
		}
		c.ulen, c.ucount, c.ufua = c.n, 1, c.fua
		if tail != nil {
			tail.next = c
		} else {
			head = c
		}
		tail, last = c, c
		units++
	}
	return head, tail, units, merges
}

// canMerge reports whether c can join the unit starting at u whose last
// request is last.
func canMerge(u, last, c *cmd, lim mergeLimits) bool {
	switch {
	case c.op != u.op || c.op == OpFlush || c.op == OpCopy:
		return false
	case last.end() != c.off:
		return false
	case u.ulen+c.n > lim.maxBytes:
		return false
	case c.op.hasData() && u.ucount+1 > lim.maxSegs:
		return false
	}
	return true
}
