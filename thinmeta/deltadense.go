package thinmeta

import (
	"errors"
	"fmt"

	"github.com/thind-storage/thind/btree"
)

// A comparison that prints no data blocks (AnyData) still needs the keys
// of the subtrees the two devices share: its same runs end at every
// hole, so every shared leaf would have to be read, and on a device
// rewritten in a few places that is nearly the whole tree.
//
// The devices' mapped block counts (their device details, which the
// checker holds to the trees) prove instead that the shared subtrees
// have no holes, without reading them. A subtree's key range, from its
// parent's keys, bounds how many blocks it can map. The walk reads the
// leaves that differ, counting their entries exactly, and adds each
// shared subtree at its bound, as a tentative same run over the whole
// range. If a device's count equals what the walk read plus the shared
// bounds, every shared subtree is at its bound, holds every key of its
// range, and the tentative runs are the truth; the runs found are then
// passed on. If not, the tentative runs are dropped and the comparison
// is run again from the first of them, reading the shared leaves.
//
// The runs from the first tentative one on are held until the proof is
// done, at most denseHeldRuns of them (a few tens of MiB); past that the
// comparison falls back as if the proof had failed.
const denseHeldRuns = 1 << 20

// errNotDense ends a dense attempt that cannot prove its tentative runs.
var errNotDense = errors.New("thinmeta: shared subtrees not proven dense")

// denseProof is the state of a dense attempt (see above).
type denseProof struct {
	fn     func(DeltaRun) error // the caller's
	mapped [2]uint64            // the devices' mapped block counts
	// shared is the blocks the shared subtrees may map, summed over
	// their key ranges.
	shared uint64
	// tentative is set from the first shared subtree on; runs then go to
	// held, and a fallback starts again at resume.
	tentative bool
	resume    uint64
	held      []DeltaRun
}

// emit is the run builder's output during a dense attempt.
func (p *denseProof) emit(r DeltaRun) error {
	if !p.tentative {
		return p.fn(r)
	}
	if len(p.held) == denseHeldRuns {
		return errNotDense
	}
	p.held = append(p.held, r)
	return nil
}

// denseUsable reports whether a comparison may try the dense proof: it
// prints no data blocks, wants same runs, covers whole devices and has
// their counts.
func denseUsable(opts DeltaOptions) bool {
	return opts.AnyData && !opts.SkipSame && opts.Mapped != nil && opts.Begin == 0 && opts.End == 0
}

// deltaDense runs a comparison with the dense proof, falling back to
// reading the shared leaves from the first tentative run if the proof
// fails.
func deltaDense(d *delta, left, right uint64, fn func(DeltaRun) error) error {
	p := &denseProof{fn: fn, mapped: *d.opts.Mapped}
	d.dense = p
	d.out = runBuilder{fn: p.emit, anyData: true}
	err := d.run(left, right)
	if err == nil {
		err = d.out.flush()
	}
	// With nothing tentative every run went out as found, exact.
	if err == nil && p.tentative && !p.proven(d) {
		err = errNotDense
	}
	switch {
	case err == nil:
		for _, r := range p.held {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	case !errors.Is(err, errNotDense):
		return err
	}
	// The runs before resume went out exact; from there on the same
	// runs are found by reading.
	retry := &delta{t: d.t, opts: d.opts, st: d.st, out: runBuilder{fn: fn, anyData: true}}
	retry.opts.Mapped, retry.opts.Begin = nil, p.resume
	if err := retry.run(left, right); err != nil {
		return err
	}
	return retry.out.flush()
}

// proven reports whether both devices' counts equal the entries the walk
// read plus the shared bounds.
func (p *denseProof) proven(d *delta) bool {
	return p.mapped[0] == d.leafEntries[0]+p.shared && p.mapped[1] == d.leafEntries[1]+p.shared
}

// sharedBound handles shared subtree it during a dense attempt: a
// tentative same run over its key range. It returns errNotDense as soon
// as the bounds pass a device's count, which a sparse device soon does.
func (d *delta) sharedBound(it deltaItem) error {
	p := d.dense
	if !p.tentative {
		p.tentative = true
		p.resume = it.lo
		if d.out.has {
			// The open run may yet take the tentative one in.
			p.resume = d.out.cur.Begin
		}
	}
	last := it.last
	if last == ^uint64(0) {
		// The tree's rightmost subtree has no bound from a parent: its
		// largest key is at the end of its rightmost path.
		k, empty, err := d.lastKey(it.block, it.height)
		if err != nil || empty {
			return err
		}
		if k < it.lo {
			return errNotDense
		}
		last = k
	}
	n := last - it.lo + 1
	p.shared += n
	if p.shared+d.leafEntries[0] > p.mapped[0] || p.shared+d.leafEntries[1] > p.mapped[1] {
		return errNotDense
	}
	return d.out.addRun(DeltaSame, it.lo, n, 0, 0)
}

// lastKey returns the largest key of the subtree at block b, of the
// given height, reading its rightmost path; empty says it holds none.
func (d *delta) lastKey(b uint64, height int) (key uint64, empty bool, err error) {
	for h := height; ; h-- {
		blk, err := d.t.ReadLock(b, btree.NodeValidator)
		if err != nil {
			return 0, false, fmt.Errorf("mapping tree node %d: %w", b, err)
		}
		d.st.NodesRead++
		n := btree.ViewNode(blk.Data())
		nr, leaf := n.NrEntries(), n.IsLeaf()
		switch {
		case leaf != (h == 0) || n.ValueSize() != 8 || nr > n.MaxEntries():
			d.t.Unlock(blk)
			return 0, false, &btree.NodeError{Block: b, Reason: fmt.Sprintf("not a mapping tree node of height %d", h)}
		case nr == 0:
			d.t.Unlock(blk)
			if leaf {
				return 0, true, nil
			}
			return 0, false, &btree.NodeError{Block: b, Reason: "internal node with no entries"}
		case leaf:
			key = n.Key(nr - 1)
			d.t.Unlock(blk)
			return key, false, nil
		}
		b = n.Value64(nr - 1)
		d.t.Unlock(blk)
	}
}
