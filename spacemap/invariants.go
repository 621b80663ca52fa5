package spacemap

import (
	"github.com/thind-storage/thind/internal/invariants"
)

// diskShadow is, in invariants builds, the data space map's counts as its
// operations say they must be: for every block touched since the map was
// opened, and the number of allocated blocks. Every change is checked
// against it, and every commit checks the whole shadow against the map.
type diskShadow struct {
	counts    map[uint64]uint32
	allocated uint64
}

// countBefore returns b's count before a change, starting the shadow on
// first use.
func (d *Disk) countBefore(b uint64) uint32 {
	if d.shadow == nil {
		d.shadow = &diskShadow{counts: map[uint64]uint32{}, allocated: d.ll.nrAllocated}
	}
	if c, ok := d.shadow.counts[b]; ok {
		return c
	}
	c, err := d.ll.lookup(b)
	if err != nil {
		invariants.Violation("data space map: count of block %d: %v", b, err)
	}
	return c
}

// assertChange checks that op moved b's count from before by delta, and
// the allocated total with it.
func (d *Disk) assertChange(b uint64, before uint32, delta int, op string) {
	want := uint32(int64(before) + int64(delta))
	got, err := d.ll.lookup(b)
	if err != nil || got != want {
		invariants.Violation("data space map: %s of block %d: count %d (%v), want %d", op, b, got, err, want)
	}
	sh := d.shadow
	sh.counts[b] = want
	switch {
	case before == 0 && want != 0:
		sh.allocated++
	case before != 0 && want == 0:
		sh.allocated--
	}
	if d.ll.nrAllocated != sh.allocated {
		invariants.Violation("data space map: %s of block %d: %d blocks allocated, the changes make %d", op, b, d.ll.nrAllocated, sh.allocated)
	}
}

// assertShadow checks every count the shadow holds against the map.
func (d *Disk) assertShadow(when string) {
	if d.shadow == nil {
		return
	}
	for b, want := range d.shadow.counts {
		if got, err := d.ll.lookup(b); err != nil || got != want {
			invariants.Violation("data space map %s: block %d counts %d (%v), the changes made it %d", when, b, got, err, want)
		}
	}
}

// assertAllocatable checks a block an allocator is about to hand out: free
// now and at the last commit ("space maps must never allocate a block from
// the previous transaction", dm-space-map.h), with no change queued.
func assertAllocatable(what string, old, cur *ll, b uint64, pending func(uint64) bool) {
	c, err := cur.lookup(b)
	if err != nil || c != 0 {
		invariants.Violation("%s: allocating block %d, which counts %d now (%v)", what, b, c, err)
	}
	if b < old.nrBlocks {
		if c, err := old.lookup(b); err != nil || c != 0 {
			invariants.Violation("%s: allocating block %d, which counted %d at the last commit (%v)", what, b, c, err)
		}
	}
	if pending != nil && pending(b) {
		invariants.Violation("%s: allocating block %d, which has a change queued", what, b)
	}
}
