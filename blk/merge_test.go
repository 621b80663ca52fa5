package blk

import (
	"fmt"
	"strings"
	"testing"
)

// req is a compact request description for merge tables.
type req struct {
	op  Op
	off int64
	n   int64
	fua bool
}

// units renders merged units as "op[off,end)+op[off,end) | ..." so that a
// table can state the expected grouping.
func units(head *cmd) string {
	var parts []string
	for u := head; u != nil; u = u.next {
		var rs []string
		for c := u; c != nil; c = c.merged {
			rs = append(rs, fmt.Sprintf("%s[%d,%d)", c.op, c.off, c.end()))
		}
		s := strings.Join(rs, "+")
		if u.ufua {
			s += " fua"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " | ")
}

func TestPluggedRequestsMerge(t *testing.T) {
	lim := mergeLimits{maxBytes: 16, maxSegs: 3}
	W, R, D, Z, F := OpWrite, OpRead, OpDiscard, OpWriteZeroes, OpFlush
	tests := []struct {
		name       string
		in         []req
		want       string
		wantMerges int
	}{
		{"contiguous writes become one unit",
			[]req{{W, 0, 4, false}, {W, 4, 4, false}, {W, 8, 4, false}},
			"write[0,4)+write[4,8)+write[8,12)", 2},
		{"submission order does not matter",
			[]req{{W, 8, 4, false}, {W, 0, 4, false}, {W, 4, 4, false}},
			"write[0,4)+write[4,8)+write[8,12)", 2},
		{"a gap splits units",
			[]req{{W, 0, 4, false}, {W, 5, 4, false}},
			"write[0,4) | write[5,9)", 0},
		{"overlapping requests never merge",
			[]req{{W, 0, 8, false}, {W, 4, 4, false}},
			"write[0,8) | write[4,8)", 0},
		{"requests at the same offset keep their order",
			[]req{{W, 0, 4, false}, {W, 0, 2, false}},
			"write[0,4) | write[0,2)", 0},
		{"different ops do not merge but each op merges with itself",
			[]req{{R, 0, 4, false}, {W, 4, 4, false}, {R, 4, 4, false}, {W, 0, 4, false}},
			"read[0,4)+read[4,8) | write[0,4)+write[4,8)", 2},
		{"max bytes bounds a unit",
			[]req{{D, 0, 8, false}, {D, 8, 8, false}, {D, 16, 4, false}},
			"discard[0,8)+discard[8,16) | discard[16,20)", 1},
		{"max segments bounds reads and writes",
			[]req{{R, 0, 1, false}, {R, 1, 1, false}, {R, 2, 1, false}, {R, 3, 1, false}},
			"read[0,1)+read[1,2)+read[2,3) | read[3,4)", 2},
		{"max segments does not bound write-zeroes",
			[]req{{Z, 0, 1, false}, {Z, 1, 1, false}, {Z, 2, 1, false}, {Z, 3, 1, false}},
			"write_zeroes[0,1)+write_zeroes[1,2)+write_zeroes[2,3)+write_zeroes[3,4)", 3},
		{"a FUA write makes its unit FUA",
			[]req{{W, 0, 4, false}, {W, 4, 4, true}, {W, 12, 4, false}},
			"write[0,4)+write[4,8) fua | write[12,16)", 1},
		{"flushes never merge",
			[]req{{F, 0, 0, false}, {F, 0, 0, false}},
			"flush[0,0) | flush[0,0)", 0},
		{"a single request is a unit of its own",
			[]req{{W, 4, 4, false}},
			"write[4,8)", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmds := make([]*cmd, len(tc.in))
			for i, r := range tc.in {
				cmds[i] = &cmd{op: r.op, off: r.off, n: r.n, fua: r.fua}
			}
			sortForMerge(cmds)
			head, _, nunits, merges := mergeSorted(cmds, lim)
			if got := units(head); got != tc.want {
				t.Errorf("units\n got %s\nwant %s", got, tc.want)
			}
			if merges != tc.wantMerges {
				t.Errorf("%d merges, want %d", merges, tc.wantMerges)
			}
			if merges+nunits != len(tc.in) {
				t.Errorf("%d units + %d merges != %d requests", nunits, merges, len(tc.in))
			}
			for u := head; u != nil; u = u.next {
				var n int64
				count := 0
				for c := u; c != nil; c = c.merged {
					n += c.n
					count++
				}
				if u.ulen != n || u.ucount != count {
					t.Errorf("unit at %d: ulen %d ucount %d, want %d and %d", u.off, u.ulen, u.ucount, n, count)
				}
			}
		})
	}
}
