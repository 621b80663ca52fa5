package thinmeta

import (
	"encoding/binary"
	"fmt"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/btree"
	"github.com/thind-storage/thind/tm"
)

// deltaCursor walks one device's mapping tree for Delta, in key order,
// one item at a time: a whole subtree while the caller has not asked to
// descend into it, else a leaf entry. Keeping subtrees whole is what
// lets Delta skip those the two trees share.
//
// Every node is checked when read: its kind matches its height (a
// B-tree's leaves are all at the same depth), its keys ascend and lie in
// the range its parent gives it. A tree that breaks these is corrupt,
// and Delta stops with an error naming the node rather than emit runs
// from it.
type deltaCursor struct {
	t      *tm.Manager
	stack  []deltaFrame
	height int // of the root; a leaf root has height 0
	reads  *uint64
	// root is the subtree not descended into yet when the stack is empty
	// and done false: the whole tree at first. Its keys lie in
	// [rootLo, rootLast].
	root             uint64
	rootLo, rootLast uint64
	done             bool
	// leaves, if not nil, reads the leaves past the cache (see
	// leafReader).
	leaves *leafReader
	// outer, if not nil, is the cursor whose current item is this
	// cursor's root: its next items are the root's siblings, read ahead
	// with a root that is a leaf.
	outer *deltaCursor
	// entries, if not nil, counts the entries of the leaves read.
	entries *uint64
}

// deltaFrame is a node being walked: its entries from index i on are
// still to come.
type deltaFrame struct {
	blk      bm.Block
	n        btree.Node
	lo, last uint64 // key range the parent gives this node (inclusive)
	height   int
	i        int
}

// deltaItem is a cursor's current item: a subtree (height >= 0) or a leaf
// entry (height -1, lo == last == the key).
type deltaItem struct {
	end      bool
	block    uint64 // subtree root
	height   int
	lo, last uint64
	value    uint64 // leaf entry: packed block and time
}

func (it deltaItem) isEntry() bool { return !it.end && it.height < 0 }

func newDeltaCursor(t *tm.Manager, root uint64, reads *uint64) (*deltaCursor, error) {
	c := &deltaCursor{t: t, root: root, rootLast: ^uint64(0), reads: reads, leaves: newLeafReader(t.BM())}
	// The height comes from the leftmost path; every other path is
	// checked against it as it is read.
	b := root
	for depth := 0; ; depth++ {
		if depth > btree.MaxDepth {
			return nil, &btree.NodeError{Block: root, Reason: "mapping tree deeper than any valid tree (a cycle?)"}
		}
		blk, err := t.ReadLock(b, btree.NodeValidator)
		if err != nil {
			return nil, fmt.Errorf("mapping tree node %d: %w", b, err)
		}
		*reads++
		n := btree.ViewNode(blk.Data())
		leaf, nr := n.IsLeaf(), n.NrEntries()
		var child uint64
		if !leaf && nr > 0 && n.ValueSize() == 8 {
			child = n.Value64(0)
		}
		t.Unlock(blk)
		if leaf {
			c.height = depth
			return c, nil
		}
		if child == 0 && (nr == 0 || n.ValueSize() != 8) {
			return nil, &btree.NodeError{Block: b, Reason: "internal node with no entries or a bad value size"}
		}
		b = child
	}
}

// item returns the current item.
func (c *deltaCursor) item() deltaItem {
	if len(c.stack) == 0 {
		if c.done {
			return deltaItem{end: true}
		}
		return deltaItem{block: c.root, height: c.height, lo: c.rootLo, last: c.rootLast}
	}
	f := &c.stack[len(c.stack)-1]
	lo, last := f.bounds()
	if f.n.IsLeaf() {
		return deltaItem{height: -1, lo: lo, last: last, value: f.n.Value64(f.i)}
	}
	return deltaItem{block: f.n.Value64(f.i), height: f.height - 1, lo: lo, last: last}
}

func (c *deltaCursor) top() *deltaFrame { return &c.stack[len(c.stack)-1] }

// bounds is the key range of entry i: a leaf entry's key, or the range a
// child may hold. The first child inherits the node's own lower bound.
func (f *deltaFrame) bounds() (lo, last uint64) {
	if f.n.IsLeaf() {
		k := f.n.Key(f.i)
		return k, k
	}
	lo, last = f.n.Key(f.i), f.last
	if f.i == 0 {
		lo = f.lo
	}
	if f.i+1 < f.n.NrEntries() {
		last = f.n.Key(f.i+1) - 1
	}
	return lo, last
}

// next moves past the current item, releasing nodes that are done.
func (c *deltaCursor) next() {
	if len(c.stack) == 0 {
		c.done = true
		return
	}
	c.stack[len(c.stack)-1].i++
	c.popDone()
}

func (c *deltaCursor) popDone() {
	for len(c.stack) > 0 {
		f := &c.stack[len(c.stack)-1]
		if f.i < f.n.NrEntries() {
			return
		}
		c.unlock(f)
		c.stack = c.stack[:len(c.stack)-1]
	}
	c.done = true
}

// descend replaces the current item, a subtree, by its entries.
func (c *deltaCursor) descend() error {
	it := c.item()
	if len(c.stack) > 0 {
		c.stack[len(c.stack)-1].i++ // the parent moves past it now
	}
	f := deltaFrame{lo: it.lo, last: it.last, height: it.height}
	if err := c.read(&f, it.block); err != nil {
		return fmt.Errorf("mapping tree node %d: %w", it.block, err)
	}
	*c.reads++
	if err := f.check(it.block); err != nil {
		c.unlock(&f)
		return err
	}
	if f.height == 0 && c.entries != nil {
		*c.entries += uint64(f.n.NrEntries())
	}
	c.stack = append(c.stack, f)
	if len(c.stack) > btree.MaxDepth {
		return &btree.NodeError{Block: it.block, Reason: "mapping tree deeper than any valid tree (a cycle?)"}
	}
	if f.n.NrEntries() == 0 {
		c.popDone() // an empty root leaf
	}
	return nil
}

// read reads node b into f: a leaf through c.leaves if it has one, any
// other node through the cache.
func (c *deltaCursor) read(f *deltaFrame, b uint64) error {
	if f.height != 0 || c.leaves == nil {
		blk, err := c.t.ReadLock(b, btree.NodeValidator)
		if err != nil {
			return err
		}
		f.blk, f.n = blk, btree.ViewNode(blk.Data())
		return nil
	}
	if n := c.t.BM().NrBlocks(); b >= n {
		return fmt.Errorf("block %d of %d: %w", b, n, bm.ErrOutOfRange)
	}
	siblings := c.siblings(0)
	if len(c.stack) == 0 && c.outer != nil {
		siblings = c.outer.siblings(1)
	}
	data, err := c.leaves.read(b, c.t.BM().NrBlocks(), siblings)
	if err != nil {
		return err
	}
	f.n = btree.ViewNode(data)
	return nil
}

// siblings returns the children of c's current node from skip past its
// position on.
func (c *deltaCursor) siblings(skip int) leafSiblings {
	if len(c.stack) == 0 {
		return leafSiblings{}
	}
	f := c.top()
	return leafSiblings{f: f, from: f.i + skip}
}

// unlock releases f's block, if it came from the cache.
func (c *deltaCursor) unlock(f *deltaFrame) {
	if f.blk.Valid() {
		c.t.Unlock(f.blk)
	}
}

// check applies the rules of a node at its place in the tree.
func (f *deltaFrame) check(b uint64) error {
	n := f.n
	bad := func(format string, a ...any) error {
		return &btree.NodeError{Block: b, Reason: fmt.Sprintf(format, a...)}
	}
	switch {
	case f.height == 0 && !n.IsLeaf():
		return bad("internal node where the tree's leaves are (height 0)")
	case f.height > 0 && !n.IsInternal():
		return bad("leaf at height %d, where the tree's leaves are at 0", f.height)
	case n.ValueSize() != 8:
		return bad("value size %d, expected 8", n.ValueSize())
	case n.NrEntries() > n.MaxEntries() || n.MaxEntries() != btree.CalcMaxEntries(8):
		return bad("%d entries, max_entries %d", n.NrEntries(), n.MaxEntries())
	case f.height > 0 && n.NrEntries() == 0:
		return bad("internal node with no entries")
	}
	keys, leaf := n.Keys(), n.IsLeaf()
	le := binary.LittleEndian
	nr := len(keys) / 8
	if nr > 0 {
		// Each key is loaded once, the previous kept.
		prev := le.Uint64(keys)
		for i := 8; i+8 <= len(keys); i += 8 {
			k := le.Uint64(keys[i:])
			if k <= prev {
				return bad("keys are out of order: %d <= %d at entry %d", k, prev, i/8)
			}
			prev = k
		}
	}
	// The keys ascend, so the first and last held to the range hold all.
	// An internal node's first key may be below its real keys, never its
	// parent's: only the leaves' keys are held to the range.
	first := 1
	if leaf {
		first = 0
	}
	for _, i := range [2]int{first, nr - 1} {
		if i < first || i >= nr {
			continue
		}
		if k := le.Uint64(keys[8*i:]); k < f.lo || k > f.last {
			return bad("key %d outside the parent's range [%d, %d]", k, f.lo, f.last)
		}
	}
	return nil
}

// close releases every node still held.
func (c *deltaCursor) close() {
	for i := range c.stack {
		c.unlock(&c.stack[i])
	}
	c.stack = c.stack[:0]
	c.done = true
}
