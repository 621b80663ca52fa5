package thinmeta

import (
	"encoding/binary"
	"fmt"

	"github.com/thind-storage/thind/tm"
)

// delta is one comparison of two mapping trees (see DeltaTrees): two
// cursors walked side by side, subtrees skipped where they meet the same
// block, opened where they do not, leaves merged entry by entry.
type delta struct {
	t    *tm.Manager
	opts DeltaOptions
	out  runBuilder
	st   *DeltaStats
	// sharedLeaves reads the leaves of shared subtrees (see leafReader),
	// one subtree at a time, walked by sharedCursor (reused: a delta may
	// meet thousands of shared leaves).
	sharedLeaves *leafReader
	sharedCursor deltaCursor
	// leafEntries counts the entries of the leaves each side's walk has
	// read, left then right; dense, if not nil, is a dense attempt's
	// proof (deltadense.go).
	leafEntries [2]uint64
	dense       *denseProof
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
	l.entries, r.entries = &d.leafEntries[0], &d.leafEntries[1]
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
			if err := d.shared(a, l); err != nil {
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
		default: // two leaf entries
			if err := d.mergeLeaves(l, r); err != nil {
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
	lkeys, lvals := lf.n.Keys(), lf.n.Values()
	rkeys, rvals := rf.n.Keys(), rf.n.Values()
	le := binary.LittleEndian
	for 8*lf.i < len(lkeys) && 8*rf.i < len(rkeys) {
		lk, rk := le.Uint64(lkeys[8*lf.i:]), le.Uint64(rkeys[8*rf.i:])
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
			b, _ := UnpackBlockTime(le.Uint64(lvals[8*lf.i:]))
			err = d.out.add(DeltaLeftOnly, lk, b, 0)
			lf.i++
		case lk > rk:
			b, _ := UnpackBlockTime(le.Uint64(rvals[8*rf.i:]))
			err = d.out.add(DeltaRightOnly, rk, 0, b)
			rf.i++
		default:
			lb, _ := UnpackBlockTime(le.Uint64(lvals[8*lf.i:]))
			rb, _ := UnpackBlockTime(le.Uint64(rvals[8*rf.i:]))
			if lb != rb {
				lf.i++
				rf.i++
				err = d.out.add(DeltaDifferent, lk, lb, rb)
				break
			}
			// Both sides go on mapping the keys that follow to the data
			// blocks that follow: one same run, however long (the
			// unchanged part of a leaf both sides copied).
			n := uint64(1)
			for 8*(lf.i+int(n)) < len(lkeys) && 8*(rf.i+int(n)) < len(rkeys) && !d.past(lk+n) {
				j, k := 8*(lf.i+int(n)), 8*(rf.i+int(n))
				if le.Uint64(lkeys[j:]) != lk+n || le.Uint64(rkeys[k:]) != lk+n ||
					le.Uint64(lvals[j:])>>timeBits != lb+n || le.Uint64(rvals[k:])>>timeBits != lb+n {
					break
				}
				n++
			}
			lf.i += int(n)
			rf.i += int(n)
			if !d.opts.SkipSame {
				err = d.out.addRun(DeltaSame, lk, n, lb, rb)
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
// all: a leaf's entries at once, a subtree by descending into it.
func (d *delta) only(c *deltaCursor, it deltaItem, kind DeltaKind) error {
	if !it.isEntry() {
		return c.descend()
	}
	_, err := d.drainLeaf(c, kind)
	return err
}

// drainLeaf emits, as kind, the entries of c's current leaf from its
// position on, in a tight loop. It returns false if the range asked for
// ends inside the leaf, leaving c there.
func (d *delta) drainLeaf(c *deltaCursor, kind DeltaKind) (bool, error) {
	f := c.top()
	keys, vals := f.n.Keys(), f.n.Values()
	le := binary.LittleEndian
	for 8*f.i < len(keys) {
		k := le.Uint64(keys[8*f.i:])
		if k < d.opts.Begin {
			f.i++
			continue
		}
		if d.past(k) {
			return false, nil
		}
		// The entries that follow k and its data block one for one, up
		// to the range's end, make one run: most of a leaf in a device
		// written in order.
		b, _ := UnpackBlockTime(le.Uint64(vals[8*f.i:]))
		n, limit := uint64(1), len(keys)/8-f.i
		if d.opts.End != 0 {
			limit = int(min(uint64(limit), d.opts.End-k))
		}
		// The node's keys ascend (deltaFrame.check), so if the last one
		// in reach is k+limit-1 those between follow k one by one and
		// only the data blocks need comparing, or nothing with AnyData.
		follow := le.Uint64(keys[8*(f.i+limit-1):]) == k+uint64(limit-1)
		switch {
		case follow && d.opts.AnyData:
			n = uint64(limit)
		case follow:
			for ; n < uint64(limit) && le.Uint64(vals[8*(f.i+int(n)):])>>timeBits == b+n; n++ {
			}
		default:
			for ; n < uint64(limit); n++ {
				j := 8 * (f.i + int(n))
				if le.Uint64(keys[j:]) != k+n || le.Uint64(vals[j:])>>timeBits != b+n {
					break
				}
			}
		}
		var lb, rb uint64
		switch kind {
		case DeltaLeftOnly:
			lb = b
		case DeltaRightOnly:
			rb = b
		default:
			lb, rb = b, b
		}
		if err := d.out.addRun(kind, k, n, lb, rb); err != nil {
			return false, err
		}
		f.i += int(n)
	}
	c.popDone()
	return true, nil
}

// shared handles a subtree both trees hold, item it of cursor from:
// skipped, or read once for its same runs.
func (d *delta) shared(it deltaItem, from *deltaCursor) error {
	d.st.SharedSkipped++
	if d.opts.SkipSame {
		return nil
	}
	if d.dense != nil {
		return d.sharedBound(it)
	}
	if d.sharedLeaves == nil {
		d.sharedLeaves = newLeafReader(d.t.BM())
	}
	c := &d.sharedCursor
	*c = deltaCursor{t: d.t, stack: c.stack[:0], root: it.block, height: it.height, rootLo: it.lo, rootLast: it.last, reads: &d.st.NodesRead, leaves: d.sharedLeaves, outer: from}
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
		// The cost of a thin_delta compatible comparison is mostly here.
		if more, err := d.drainLeaf(c, DeltaSame); !more || err != nil {
			return err
		}
	}
}
