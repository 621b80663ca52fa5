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
	d := &delta{t: t, opts: opts, out: runBuilder{fn: fn}, st: &st}
	err := d.run(left, right)
	if err == nil {
		err = d.out.flush()
	}
	if errors.Is(err, btree.ErrStop) {
		err = nil
	}
	return st, err
}

type delta struct {
	t    *tm.Manager
	opts DeltaOptions
	out  runBuilder
	st   *DeltaStats
}

// past reports whether keys from lo on are beyond the range asked for.
func (d *delta) past(lo uint64) bool { return d.opts.End != 0 && lo >= d.opts.End }

// before reports whether keys up to last are below the range asked for.
func (d *delta) before(last uint64) bool { return last < d.opts.Begin }

func (d *delta) run(left, right uint64) error {
	l, err := newDeltaCursor(d.t, left, &d.st.NodesRead)
	if err != nil {
		return fmt.Errorf("left tree: %w", err)
	}
	defer l.close()
	r, err := newDeltaCursor(d.t, right, &d.st.NodesRead)
	if err != nil {
		return fmt.Errorf("right tree: %w", err)
	}
	defer r.close()
	for {
		a, b := d.clip(l), d.clip(r)
		switch {
		case a.end && b.end:
			return nil
		case a.end || b.end:
			// One side has nothing more: the other's rest is its own.
			c, it, kind := l, a, DeltaLeftOnly
			if a.end {
				c, it, kind = r, b, DeltaRightOnly
			}
			if err := d.only(c, it, kind); err != nil {
				return err
			}
		case !a.isEntry() && !b.isEntry() && a.block == b.block && a.height == b.height:
			if err := d.shared(a); err != nil {
				return err
			}
			l.next()
			r.next()
		case !a.isEntry() && (b.isEntry() || a.height > b.height || (a.height == b.height && a.lo <= b.lo)):
			if err := l.descend(); err != nil {
				return err
			}
		case !b.isEntry():
			if err := r.descend(); err != nil {
				return err
			}
		case l.inLeaf() && r.inLeaf():
			if err := d.mergeLeaves(l, r); err != nil {
				return err
			}
		default:
			if err := d.entries(l, r, a, b); err != nil {
				return err
			}
		}
	}
}

// mergeLeaves compares two leaves entry by entry, from each cursor's
// position until either leaf ends or the range asked for does: the loop
// most of a comparison's time is spent in, kept tight.
func (d *delta) mergeLeaves(l, r *deltaCursor) error {
	lf, rf := l.top(), r.top()
	ln, rn := lf.n.NrEntries(), rf.n.NrEntries()
	for lf.i < ln && rf.i < rn {
		lk, rk := lf.n.Key(lf.i), rf.n.Key(rf.i)
		if d.past(min(lk, rk)) {
			break // the caller's clip ends the cursors
		}
		var err error
		switch {
		case lk < d.opts.Begin:
			lf.i++
		case rk < d.opts.Begin:
			rf.i++
		case lk < rk:
			b, _ := UnpackBlockTime(lf.n.Value64(lf.i))
			err = d.out.add(DeltaLeftOnly, lk, b, 0)
			lf.i++
		case lk > rk:
			b, _ := UnpackBlockTime(rf.n.Value64(rf.i))
			err = d.out.add(DeltaRightOnly, rk, 0, b)
			rf.i++
		default:
			lv, rv := lf.n.Value64(lf.i), rf.n.Value64(rf.i)
			lf.i++
			rf.i++
			lb, _ := UnpackBlockTime(lv)
			rb, _ := UnpackBlockTime(rv)
			switch {
			case lb != rb:
				err = d.out.add(DeltaDifferent, lk, lb, rb)
			case !d.opts.SkipSame:
				err = d.out.add(DeltaSame, lk, lb, rb)
			}
		}
		if err != nil {
			return err
		}
	}
	l.popDone()
	r.popDone()
	return nil
}

// clip returns c's current item within the range asked for, skipping
// what lies before it and ending at what lies past it.
func (d *delta) clip(c *deltaCursor) deltaItem {
	for {
		it := c.item()
		switch {
		case it.end:
			return it
		case d.past(it.lo):
			c.close()
			return deltaItem{end: true}
		case d.before(it.last):
			c.next()
		default:
			return it
		}
	}
}

// only emits item it of cursor c, which the other side does not map at
// all: a leaf entry at once, a subtree by descending into it.
func (d *delta) only(c *deltaCursor, it deltaItem, kind DeltaKind) error {
	if !it.isEntry() {
		return c.descend()
	}
	b, _ := UnpackBlockTime(it.value)
	var err error
	if kind == DeltaLeftOnly {
		err = d.out.add(DeltaLeftOnly, it.lo, b, 0)
	} else {
		err = d.out.add(DeltaRightOnly, it.lo, 0, b)
	}
	c.next()
	return err
}

// entries compares the two sides' next leaf entries.
func (d *delta) entries(l, r *deltaCursor, a, b deltaItem) error {
	switch {
	case a.lo < b.lo:
		return d.only(l, a, DeltaLeftOnly)
	case a.lo > b.lo:
		return d.only(r, b, DeltaRightOnly)
	}
	lb, _ := UnpackBlockTime(a.value)
	rb, _ := UnpackBlockTime(b.value)
	l.next()
	r.next()
	if lb == rb {
		if d.opts.SkipSame {
			return nil
		}
		return d.out.add(DeltaSame, a.lo, lb, rb)
	}
	return d.out.add(DeltaDifferent, a.lo, lb, rb)
}

// shared handles a subtree both trees hold: skipped, or read once for its
// same runs.
func (d *delta) shared(it deltaItem) error {
	d.st.SharedSkipped++
	if d.opts.SkipSame {
		return nil
	}
	c := &deltaCursor{t: d.t, root: it.block, height: it.height, rootLo: it.lo, rootLast: it.last, reads: &d.st.NodesRead}
	defer c.close()
	for {
		e := d.clip(c)
		switch {
		case e.end:
			return nil
		case !e.isEntry():
			if err := c.descend(); err != nil {
				return err
			}
			continue
		}
		// A leaf's entries, in a tight loop: the cost of a thin_delta
		// compatible comparison is mostly here.
		f := c.top()
		for nr := f.n.NrEntries(); f.i < nr; f.i++ {
			k := f.n.Key(f.i)
			if k < d.opts.Begin {
				continue
			}
			if d.past(k) {
				break
			}
			b, _ := UnpackBlockTime(f.n.Value64(f.i))
			if err := d.out.add(DeltaSame, k, b, b); err != nil {
				return err
			}
		}
		if f.i < f.n.NrEntries() {
			return nil // past the range
		}
		c.popDone()
	}
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
	var roots [2]uint64
	for i, dev := range [2]uint64{left, right} {
		if _, ok := p.devices[dev]; !ok {
			return DeltaStats{}, fmt.Errorf("device %d: %w", dev, ErrNoDevice)
		}
		var v [8]byte
		if err := btree.Lookup(&p.tr.tlInfo, p.root, []uint64{dev}, v[:]); err != nil {
			return DeltaStats{}, fmt.Errorf("device %d: mapping tree: %w", dev, err)
		}
		roots[i] = binary.LittleEndian.Uint64(v[:])
	}
	return DeltaTrees(p.tm, roots[0], roots[1], opts, fn)
}

// runBuilder merges per-block results into runs: a block extends the
// current run if it has the same kind, follows it, and its data blocks
// follow the run's on each side that maps it.
type runBuilder struct {
	fn  func(DeltaRun) error
	cur DeltaRun
	has bool
}

func (rb *runBuilder) add(kind DeltaKind, vblock, leftData, rightData uint64) error {
	c := &rb.cur
	if rb.has && c.Kind == kind && c.Begin+c.Len == vblock &&
		(kind == DeltaRightOnly || c.LeftData+c.Len == leftData) &&
		(kind == DeltaLeftOnly || c.RightData+c.Len == rightData) {
		c.Len++
		return nil
	}
	if err := rb.flush(); err != nil {
		return err
	}
	rb.cur = DeltaRun{Kind: kind, Begin: vblock, Len: 1, LeftData: leftData, RightData: rightData}
	rb.has = true
	return nil
}

func (rb *runBuilder) flush() error {
	if !rb.has {
		return nil
	}
	rb.has = false
	return rb.fn(rb.cur)
}
