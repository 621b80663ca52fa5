package btree

import (
	"encoding/binary"

	"github.com/thind-storage/thind/bm"
)

// BlockWriter is where a Builder puts the nodes it finishes: an offline
// writer's allocator and device, not a transaction (restore writes a pool
// that nothing else reads yet).
type BlockWriter interface {
	// Alloc returns a free block for a node.
	Alloc() (uint64, error)
	// Write stamps data with v and writes it to block b.
	Write(b uint64, data []byte, v bm.Validator) error
}

// Builder builds a single-level B-tree bottom-up from entries added in
// ascending key order, the way an offline writer should: full nodes, with
// the last two of each level evened out so that no node but the root
// falls below the minimum fill of max_entries/3 (thin_check's rule).
// Nodes are written as they complete, so memory holds one pending node per
// level. Reference counts are the caller's: it counts every node written.
type Builder struct {
	w      BlockWriter
	levels []*levelBuilder
}

type levelBuilder struct {
	cur     node // node being filled
	pending node // a full node held back in case the last needs evening out
	out     *levelBuilder
	b       *Builder
}

// NewBuilder returns a builder of a tree whose leaves hold values of
// valueSize bytes.
func NewBuilder(w BlockWriter, valueSize int) *Builder {
	b := &Builder{w: w}
	b.levels = []*levelBuilder{b.newLevel(LeafNode, valueSize)}
	return b
}

func (b *Builder) newLevel(flags uint32, valueSize int) *levelBuilder {
	l := &levelBuilder{b: b, cur: make(node, bm.BlockSize)}
	initNode(l.cur, flags, valueSize)
	return l
}

// Add appends an entry; keys must ascend.
func (b *Builder) Add(key uint64, value []byte) error {
	return b.levels[0].add(key, value)
}

func (l *levelBuilder) add(key uint64, value []byte) error {
	if l.cur.nrEntries() == l.cur.maxEntries() {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n := l.cur
	i := n.nrEntries()
	n.setKey(i, key)
	copy(n.value(i), value)
	n.setNrEntries(i + 1)
	return nil
}

// rotate makes the full current node pending, writing out the previous
// pending one.
func (l *levelBuilder) rotate() error {
	if l.pending != nil {
		if err := l.emit(l.pending); err != nil {
			return err
		}
	}
	l.pending = l.cur
	l.cur = make(node, bm.BlockSize)
	copyHeader(l.cur, l.pending)
	return nil
}

// emit writes a finished node and passes (first key, block) up a level.
func (l *levelBuilder) emit(n node) error {
	loc, err := l.b.w.Alloc()
	if err != nil {
		return err
	}
	if err := l.b.w.Write(loc, n, NodeValidator); err != nil {
		return err
	}
	if l.out == nil {
		l.out = l.b.newLevel(InternalNode, 8)
		l.b.levels = append(l.b.levels, l.out)
	}
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], loc)
	return l.out.add(n.key(0), v[:])
}

// Finish writes every level out and returns the root.
func (b *Builder) Finish() (uint64, error) {
	for i := 0; i < len(b.levels); i++ {
		l := b.levels[i]
		if i == len(b.levels)-1 && l.pending == nil {
			// One node holds the whole level: it is the root.
			loc, err := b.w.Alloc()
			if err != nil {
				return 0, err
			}
			return loc, b.w.Write(loc, l.cur, NodeValidator)
		}
		last, prev := l.cur, l.pending
		if last.nrEntries() < last.maxEntries()/3 {
			// Even out the last two nodes: both end up at least half
			// of max, well above the minimum.
			moveTail(prev, last, prev.nrEntries()-(prev.nrEntries()+last.nrEntries())/2)
		}
		if err := l.emit(prev); err != nil {
			return 0, err
		}
		if last.nrEntries() > 0 {
			if err := l.emit(last); err != nil {
				return 0, err
			}
		}
		l.pending, l.cur = nil, nil
	}
	panic("btree.Builder: no root level")
}

// moveTail moves the last k entries of prev to the front of last.
func moveTail(prev, last node, k int) {
	np, nl := prev.nrEntries(), last.nrEntries()
	last.shiftUp(k)
	copyEntries(last, 0, prev, np-k, k)
	prev.setNrEntries(np - k)
	last.setNrEntries(nl + k)
}
