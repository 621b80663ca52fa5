package btree

import (
	"github.com/thind-storage/thind/bm"
)

// shadowSpine walks down a tree shadowing each node, holding at most two
// (the current node and its parent), as dm-btree-spine.c does.
type shadowSpine struct {
	info  *Info
	nodes [2]bm.Block
	count int
	root  uint64
	depth int
}

// step shadows block b and makes it the current node; the previous current
// node becomes the parent. vt is the value type of b's level, for
// incrementing a shared leaf's values.
func (s *shadowSpine) step(b uint64, vt *ValueType) error {
	if s.depth++; s.depth > MaxDepth*2 {
		return &NodeError{Block: b, Reason: "tree deeper than any valid tree (cycle?)"}
	}
	if s.count == 2 {
		s.info.TM.Unlock(s.nodes[0])
		s.nodes[0] = s.nodes[1]
		s.count--
	}
	blk, inc, err := s.info.TM.Shadow(b, NodeValidator)
	if err != nil {
		return err
	}
	if err := checkValueSize(node(blk.Data()), blk.Location(), vt.Size); err != nil {
		s.info.TM.Unlock(blk)
		return err
	}
	if inc {
		if err := s.info.incChildren(node(blk.Data()), vt); err != nil {
			s.info.TM.Unlock(blk)
			return err
		}
	}
	if s.count == 0 {
		s.root = blk.Location()
	}
	s.nodes[s.count] = blk
	s.count++
	return nil
}

func (s *shadowSpine) current() bm.Block { return s.nodes[s.count-1] }
func (s *shadowSpine) parent() bm.Block  { return s.nodes[0] }
func (s *shadowSpine) hasParent() bool   { return s.count >= 2 }

// setCurrent replaces the current node (after a split moved the key to a
// sibling).
func (s *shadowSpine) setCurrent(b bm.Block) { s.nodes[s.count-1] = b }

func (s *shadowSpine) exit() {
	for i := 0; i < s.count; i++ {
		s.info.TM.Unlock(s.nodes[i])
	}
	s.count = 0
}

// patchParent points the parent's entry i at the current node, which may
// have moved when it was shadowed.
func (s *shadowSpine) patchParent(i int) {
	if s.hasParent() && i >= 0 {
		node(s.parent().Data()).setValue64(i, s.current().Location())
	}
}
