package thinmeta

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/thind-storage/thind/btree"
	"github.com/thind-storage/thind/tm"
)

// DeltaKind says how two devices compare over a run of virtual blocks
// (thin_delta's four elements).
type DeltaKind uint8

const (
	// DeltaSame: both map the blocks to the same data blocks.
	DeltaSame DeltaKind = iota
	// DeltaDifferent: both map them, to different data blocks.
	DeltaDifferent
	// DeltaLeftOnly: only the left device maps them.
	DeltaLeftOnly
	// DeltaRightOnly: only the right device maps them.
	DeltaRightOnly
)

var deltaKindNames = [...]string{"same", "different", "left_only", "right_only"}

// String is thin_delta's element name for the kind.
func (k DeltaKind) String() string {
	if int(k) < len(deltaKindNames) {
		return deltaKindNames[k]
	}
	return fmt.Sprintf("DeltaKind(%d)", uint8(k))
}

// DeltaRun is a run of virtual blocks [Begin, Begin+Len) of one kind,
// whose data blocks are contiguous on each side that maps them: virtual
// block Begin+i maps to LeftData+i on the left and RightData+i on the
// right. A side that maps nothing has 0.
type DeltaRun struct {
	Kind      DeltaKind
	Begin     uint64
	Len       uint64
	LeftData  uint64
	RightData uint64
}

// DeltaOptions tune Delta.
type DeltaOptions struct {
	// SkipSame leaves out the runs both devices map alike. The subtrees
	// they share are then never read, so the cost follows what changed,
	// not the size of the devices.
	SkipSame bool
	// Begin and End limit the comparison to virtual blocks [Begin, End);
	// End 0 means no limit.
	Begin, End uint64
	// AnyData lets a run's data blocks be anything: runs end only where
	// the kind changes or a block is not mapped, and carry no data
	// blocks (LeftData and RightData are 0). It is for callers that
	// print none (thin_delta's plain output), and saves reading the
	// values of the leaves two trees share.
	AnyData bool
	// Mapped, with AnyData, same runs and no range, gives the left and
	// right devices' mapped block counts (their device details). Where
	// they prove that the shared subtrees have no holes, those are
	// never read (see deltadense.go); Pool.Delta fills it in.
	Mapped *[2]uint64
}

// DeltaStats counts the work of a Delta.
type DeltaStats struct {
	NodesRead     uint64 // B-tree nodes read, of both trees
	SharedSkipped uint64 // subtrees found shared and so not compared
}

// DeltaTrees compares two devices' mapping trees (the bottom level, one
// device's virtual block -> block and time) read through t, calling fn
// with each run in virtual block order. fn returning btree.ErrStop ends
// it without an error.
//
// The trees are compared top-down. Two subtrees with the same root block
// are identical (copy-on-write never changes a shared node in place), so
// they are skipped whole, at whatever depth they turn up. A subtree is
// only opened when the other side has a different one at its height, so
// trees whose node boundaries moved after a snapshot (a split, a
// rebalance) are merged by key range, still skipping every shared
// subtree below the point where they part. Unrelated devices share
// nothing and cost a full walk of both.
func DeltaTrees(t *tm.Manager, left, right uint64, opts DeltaOptions, fn func(DeltaRun) error) (DeltaStats, error) {
	var st DeltaStats
	d := &delta{t: t, opts: opts, out: runBuilder{fn: fn, anyData: opts.AnyData}, st: &st}
	var err error
	if denseUsable(opts) {
		err = deltaDense(d, left, right, fn)
	} else if err = d.run(left, right); err == nil {
		err = d.out.flush()
	}
	if errors.Is(err, btree.ErrStop) {
		err = nil
	}
	return st, err
}

// Delta compares devices left and right of the pool (see DeltaTrees),
// holding the pool's read lock throughout: fn must not call the pool.
// Callers that stream a long comparison take it in ranges of virtual
// blocks (opts.Begin, opts.End), letting changes in between.
func (p *Pool) Delta(left, right uint64, opts DeltaOptions, fn func(DeltaRun) error) (DeltaStats, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.failed {
		return DeltaStats{}, ErrFailed
	}
	var roots, mapped [2]uint64
	for i, dev := range [2]uint64{left, right} {
		det, ok := p.devices[dev]
		if !ok {
			return DeltaStats{}, fmt.Errorf("device %d: %w", dev, ErrNoDevice)
		}
		mapped[i] = det.MappedBlocks
		var v [8]byte
		if err := btree.Lookup(&p.tr.tlInfo, p.root, []uint64{dev}, v[:]); err != nil {
			return DeltaStats{}, fmt.Errorf("device %d: mapping tree: %w", dev, err)
		}
		roots[i] = binary.LittleEndian.Uint64(v[:])
	}
	if opts.Mapped == nil {
		opts.Mapped = &mapped
	}
	return DeltaTrees(p.tm, roots[0], roots[1], opts, fn)
}
