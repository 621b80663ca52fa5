package spacemap

import (
	"fmt"

	"github.com/thind-storage/thind/btree"
	"github.com/thind-storage/thind/internal/invariants"
	"github.com/thind-storage/thind/tm"
)

// Disk is the data space map (dm-space-map-disk.c): reference counts of the
// pool's data blocks, stored in metadata blocks allocated from the
// metadata space map through the transaction manager. Not safe for
// concurrent use.
type Disk struct {
	ll, old              *ll
	begin                uint64
	allocatedThisTransac uint64

	// freedAgain holds the blocks allocated and freed again in this
	// transaction. The committed state keeps the blocks it maps from
	// reuse, but not these: a read or write that looked one up may still
	// be in flight, and the discard that freed it may pass it down to the
	// data device right after the commit. Like every other freed block,
	// they wait for the commit. (The kernel gets the same from dm-thin
	// holding a reference until the passdown is done.)
	freedAgain map[uint64]struct{}

	shadow *diskShadow // invariants builds only
}

// CreateDisk makes an empty data space map of nrBlocks blocks
// (dm_sm_disk_create).
func CreateDisk(t *tm.Manager, nrBlocks uint64) (*Disk, error) {
	l := newLL(t, diskIndex)
	var err error
	if l.bitmapRoot, err = btree.Empty(&l.indexInfo); err != nil {
		return nil, err
	}
	if l.refCountRoot, err = btree.Empty(&l.refInfo); err != nil {
		return nil, err
	}
	if err := l.extend(nrBlocks); err != nil {
		return nil, err
	}
	d := &Disk{ll: l}
	if err := d.Commit(); err != nil {
		return nil, err
	}
	return d, nil
}

// OpenDisk opens a committed data space map from its root.
func OpenDisk(t *tm.Manager, r Root) (*Disk, error) {
	l := newLL(t, diskIndex)
	if err := l.open(r); err != nil {
		return nil, err
	}
	return &Disk{ll: l, old: l.snapshot()}, nil
}

// NrBlocks returns the number of blocks the map covers.
func (d *Disk) NrBlocks() uint64 { return d.ll.nrBlocks }

// NrAllocated returns the number of blocks with a non-zero count.
func (d *Disk) NrAllocated() uint64 { return d.ll.nrAllocated }

// NrFree returns how many blocks can still be allocated in this
// transaction: blocks freed since the last commit do not count yet.
func (d *Disk) NrFree() uint64 {
	used := d.old.nrAllocated + d.allocatedThisTransac
	if used >= d.ll.nrBlocks {
		return 0
	}
	return d.ll.nrBlocks - used
}

// Count returns b's reference count.
func (d *Disk) Count(b uint64) (uint32, error) { return d.ll.lookup(b) }

// CountIsMoreThanOne reports whether b is shared.
func (d *Disk) CountIsMoreThanOne(b uint64) (bool, error) {
	c, err := d.ll.lookup(b)
	return c > 1, err
}

// Inc adds a reference to b.
func (d *Disk) Inc(b uint64) error {
	var before uint32
	if invariants.Enabled {
		before = d.countBefore(b)
	}
	_, err := d.ll.inc(b)
	if invariants.Enabled && err == nil {
		d.assertChange(b, before, 1, "inc")
	}
	return err
}

// Dec drops a reference to b.
func (d *Disk) Dec(b uint64) error {
	var before uint32
	if invariants.Enabled {
		before = d.countBefore(b)
	}
	ev, err := d.ll.dec(b)
	if invariants.Enabled && err == nil {
		d.assertChange(b, before, -1, "dec")
	}
	if err != nil || ev != eventFree {
		return err
	}
	if b < d.old.nrBlocks {
		c, err := d.old.lookupBitmap(b)
		if err != nil || c != 0 {
			return err // the committed state keeps it from reuse
		}
	}
	if d.freedAgain == nil {
		d.freedAgain = map[uint64]struct{}{}
	}
	d.freedAgain[b] = struct{}{}
	return nil
}

// freedThisTransaction reports whether b is in freedAgain.
func (d *Disk) freedThisTransaction(b uint64) bool {
	_, ok := d.freedAgain[b]
	return ok
}

// NewBlock allocates a block free both now and at the last commit, and
// not freed in this transaction; the lowest one at or after the previous
// allocation first.
func (d *Disk) NewBlock() (uint64, error) { return d.NewBlockExcept(nil) }

// NewBlockExcept is NewBlock, passing over the free blocks for which
// held (if not nil) is true: blocks the caller keeps back from reuse in
// core, such as those whose passdown is on its way to the data device.
func (d *Disk) NewBlockExcept(held func(uint64) bool) (uint64, error) {
	var veto func(uint64) bool
	switch {
	case len(d.freedAgain) > 0 && held != nil:
		veto = func(b uint64) bool { return d.freedThisTransaction(b) || held(b) }
	case len(d.freedAgain) > 0:
		veto = d.freedThisTransaction
	default:
		veto = held
	}
	b, err := findCommonFree(d.old, d.ll, d.begin, d.ll.nrBlocks, veto)
	if err == ErrNoSpace {
		b, err = findCommonFree(d.old, d.ll, 0, d.begin, veto)
	}
	if err != nil {
		return 0, err
	}
	d.begin = b + 1
	if invariants.Enabled {
		assertAllocatable("data space map", d.old, d.ll, b, veto)
		if c := d.countBefore(b); c != 0 {
			invariants.Violation("data space map: allocating block %d, which its changes left at %d", b, c)
		}
	}
	ev, err := d.ll.inc(b)
	if err != nil {
		return 0, err
	}
	if invariants.Enabled {
		d.assertChange(b, 0, 1, "allocation")
	}
	if ev == eventAlloc {
		d.allocatedThisTransac++
	}
	return b, nil
}

// Extend grows the map by extra blocks.
func (d *Disk) Extend(extra uint64) error { return d.ll.extend(extra) }

// Commit writes the index entries; the root is then ready for the
// superblock and this state becomes the one allocation must not disturb.
func (d *Disk) Commit() error {
	if err := d.ll.commit(); err != nil {
		return fmt.Errorf("data space map: %w", err)
	}
	if invariants.Enabled {
		d.assertShadow("at commit")
	}
	d.old = d.ll.snapshot()
	d.begin = 0
	d.allocatedThisTransac = 0
	clear(d.freedAgain)
	return nil
}

// Root returns the root to store in the superblock (after Commit).
func (d *Disk) Root() Root { return d.ll.root() }
