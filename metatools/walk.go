package metatools

import (
	"errors"
	"fmt"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/btree"
)

// treeWalker validates B-trees node by node with thin_check's rules (and
// a few more), counting one reference per parent pointer and walking each
// node once however many trees share it.
type treeWalker struct {
	img      *Image
	r        *Report
	refs     []uint32              // expected metadata reference counts
	nodes    map[uint64]*nodeState // nodes already walked
	maxBlock uint64                // blocks at or past this are out of range
	// damaged is set when a node could not be walked: the counts below
	// it are unknown.
	damaged bool
}

// nodeState remembers a walked node, for the next parent that points at it.
type nodeState struct {
	ok          bool   // readable and well-formed (its own rules)
	empty       bool   // no keys (only an empty root leaf)
	first, last uint64 // key range, when not empty
	entries     uint64 // leaf entries below it
	valueSize   int    // leaf value size of the tree it was walked in
}

// treeKind describes the tree being walked.
type treeKind struct {
	name      string
	valueSize int
	// leaf is called once for every entry of every leaf, the first time
	// the leaf is walked: shared leaves are visited once.
	leaf func(leafBlock, key uint64, value []byte)
	// again, if set, is called for every entry below a node already
	// walked when another superblock reaches it. The device details and
	// top-level mapping trees need it: a metadata snapshot shares their
	// nodes with the live pool, yet each view must see all of its own
	// devices. The pointers in those entries were counted the first time.
	again func(key uint64, value []byte)
}

func newTreeWalker(img *Image, r *Report, maxBlock uint64) *treeWalker {
	return &treeWalker{img: img, r: r, refs: make([]uint32, img.NrBlocks), nodes: map[uint64]*nodeState{}, maxBlock: maxBlock}
}

// ref counts one reference to block b; false if b is out of range.
func (w *treeWalker) ref(b uint64, where string) bool {
	if b >= w.maxBlock || b >= uint64(len(w.refs)) {
		w.r.errorAt(b, where, "reference to block %d beyond the metadata space map (%d blocks)", b, w.maxBlock)
		return false
	}
	w.refs[b]++
	return true
}

// describe turns a block read error into a fault message.
func describe(err error) string {
	var ce *bm.ChecksumError
	var le *bm.LocationError
	var fe *bm.FormatError
	var vm *bm.ValidatorMismatchError
	switch {
	case errors.As(err, &ce):
		return fmt.Sprintf("bad checksum: computed %d, stored %d", ce.Want, ce.Got)
	case errors.As(err, &le):
		return fmt.Sprintf("block number field says %d", le.Got)
	case errors.As(err, &fe):
		return fe.Reason
	case errors.As(err, &vm):
		return fmt.Sprintf("used as a %s, but already read as a %s", vm.Use, vm.Have)
	}
	return err.Error()
}

// walk validates the tree or subtree at b. lo and hi bound its keys (hi
// exclusive; hasHi false for no bound). It returns nil if b is unusable.
func (w *treeWalker) walk(t *treeKind, b uint64, isRoot bool, lo, hi uint64, hasHi bool, depth int) *nodeState {
	if !w.ref(b, t.name) {
		return nil
	}
	if st, ok := w.nodes[b]; ok {
		if st.ok && st.valueSize != t.valueSize {
			w.r.errorAt(b, t.name, "node shared with a tree of value size %d", st.valueSize)
			return nil
		}
		if st.ok && !st.empty && (st.first < lo || (hasHi && st.last >= hi)) {
			w.r.errorAt(b, t.name, "keys %d..%d outside the parent's range [%d, %s)", st.first, st.last, lo, bound(hi, hasHi))
		}
		if st.ok && t.again != nil {
			w.revisit(t, b, depth)
		}
		return st
	}
	st := &nodeState{valueSize: t.valueSize}
	w.nodes[b] = st
	damagedBefore := w.damaged
	w.damaged = true // until the node proves readable
	if depth > btree.MaxDepth {
		w.r.errorAt(b, t.name, "tree deeper than %d levels (a cycle?)", btree.MaxDepth)
		return nil
	}
	blk, err := w.img.BM.ReadLock(b, btree.NodeValidator)
	if err != nil {
		w.r.errorAt(b, t.name, "btree node: %s", describe(err))
		return nil
	}
	defer w.img.BM.Unlock(blk)
	n := btree.ViewNode(blk.Data())
	nr := n.NrEntries()
	vs := t.valueSize
	if n.IsInternal() {
		vs = 8
	}
	if n.ValueSize() != vs {
		w.r.errorAt(b, t.name, "value size %d, expected %d", n.ValueSize(), vs)
		return nil
	}
	if want := btree.CalcMaxEntries(vs); n.MaxEntries() != want {
		w.r.errorAt(b, t.name, "max_entries %d, expected %d for value size %d", n.MaxEntries(), want, vs)
		return nil
	}
	if !isRoot && nr < n.MaxEntries()/3 {
		w.r.errorAt(b, t.name, "too few entries: %d, a non-root node needs at least %d", nr, n.MaxEntries()/3)
	}
	if n.IsInternal() && nr == 0 {
		w.r.errorAt(b, t.name, "internal node with no entries")
		return nil
	}
	for i := 0; i < nr; i++ {
		k := n.Key(i)
		if i > 0 && k <= n.Key(i-1) {
			w.r.errorAt(b, t.name, "keys are out of order: %d <= %d at entry %d", k, n.Key(i-1), i)
			return nil
		}
	}
	st.ok = true
	w.damaged = damagedBefore
	st.empty = nr == 0
	if nr == 0 {
		return st
	}
	st.first, st.last = n.Key(0), n.Key(nr-1)
	if st.first < lo || (hasHi && st.last >= hi) {
		w.r.errorAt(b, t.name, "keys %d..%d outside the parent's range [%d, %s)", st.first, st.last, lo, bound(hi, hasHi))
	}
	if n.IsLeaf() {
		st.entries = uint64(nr)
		if t.leaf != nil {
			for i := 0; i < nr; i++ {
				t.leaf(b, n.Key(i), n.Value(i))
			}
		}
		return st
	}
	for i := 0; i < nr; i++ {
		childHi, childHasHi := hi, hasHi
		if i+1 < nr {
			childHi, childHasHi = n.Key(i+1), true
		}
		child := w.walk(t, n.Value64(i), false, n.Key(i), childHi, childHasHi, depth+1)
		if child == nil || !child.ok {
			continue
		}
		st.entries += child.entries
	}
	return st
}

// revisit calls t.again for every entry below b, a subtree already walked
// and found well-formed. It counts no references: the pointer that led
// here was counted by walk, and the nodes below by their first walk.
func (w *treeWalker) revisit(t *treeKind, b uint64, depth int) {
	if depth > btree.MaxDepth {
		return
	}
	if st, ok := w.nodes[b]; !ok || !st.ok {
		return
	}
	blk, err := w.img.BM.ReadLock(b, btree.NodeValidator)
	if err != nil {
		return
	}
	defer w.img.BM.Unlock(blk)
	n := btree.ViewNode(blk.Data())
	for i := 0; i < n.NrEntries(); i++ {
		if n.IsLeaf() {
			t.again(n.Key(i), n.Value(i))
		} else {
			w.revisit(t, n.Value64(i), depth+1)
		}
	}
}

// walked returns the state of a node already walked, nil if none.
func (w *treeWalker) walked(b uint64) *nodeState { return w.nodes[b] }

func bound(hi uint64, has bool) string {
	if !has {
		return "-"
	}
	return fmt.Sprint(hi)
}
