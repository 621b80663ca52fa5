package metatools

import (
	"encoding/binary"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/btree"
)

// treeBuilder builds a B-tree bottom-up from entries added in ascending
// key order, the way an offline writer should: full nodes, with the last
// two of each level evened out so that no node but the root falls below
// the minimum fill of max_entries/3 (thin_check's rule). Nodes are written
// as they complete, so memory holds one pending node per level.
type treeBuilder struct {
	w      *blockWriter
	levels []*levelBuilder
	count  uint64
}

type levelBuilder struct {
	valueSize int
	max       int
	flags     uint32
	cur       []byte // node being filled
	pending   []byte // a full node held back in case the last needs evening out
	out       *levelBuilder
	tb        *treeBuilder
}

func newTreeBuilder(w *blockWriter, valueSize int) *treeBuilder {
	tb := &treeBuilder{w: w}
	tb.levels = []*levelBuilder{tb.newLevel(valueSize, btree.LeafNode)}
	return tb
}

func (tb *treeBuilder) newLevel(valueSize int, flags uint32) *levelBuilder {
	l := &levelBuilder{valueSize: valueSize, max: btree.CalcMaxEntries(valueSize), flags: flags, tb: tb}
	l.cur = l.newNode()
	return l
}

func (l *levelBuilder) newNode() []byte {
	n := make([]byte, bm.BlockSize)
	binary.LittleEndian.PutUint32(n[4:], l.flags)
	binary.LittleEndian.PutUint32(n[20:], uint32(l.max))
	binary.LittleEndian.PutUint32(n[24:], uint32(l.valueSize))
	return n
}

func nrOf(n []byte) int            { return int(binary.LittleEndian.Uint32(n[16:])) }
func setNr(n []byte, c int)        { binary.LittleEndian.PutUint32(n[16:], uint32(c)) }
func keyOf(n []byte, i int) uint64 { return binary.LittleEndian.Uint64(n[32+8*i:]) }

// add appends an entry; keys must ascend.
func (tb *treeBuilder) add(key uint64, value []byte) error {
	tb.count++
	return tb.levels[0].add(key, value)
}

func (l *levelBuilder) add(key uint64, value []byte) error {
	if nrOf(l.cur) == l.max {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n := l.cur
	i := nrOf(n)
	binary.LittleEndian.PutUint64(n[32+8*i:], key)
	off := 32 + 8*l.max + l.valueSize*i
	copy(n[off:off+l.valueSize], value)
	setNr(n, i+1)
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
	l.cur = l.newNode()
	return nil
}

// emit writes a finished node and passes (first key, block) up a level.
func (l *levelBuilder) emit(n []byte) error {
	b, err := l.tb.w.alloc()
	if err != nil {
		return err
	}
	if err := l.tb.w.write(b, n, btree.NodeValidator); err != nil {
		return err
	}
	if l.out == nil {
		l.out = l.tb.newLevel(8, btree.InternalNode)
		l.tb.levels = append(l.tb.levels, l.out)
	}
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], b)
	return l.out.add(keyOf(n, 0), v[:])
}

// finish flushes every level and returns the root.
func (tb *treeBuilder) finish() (uint64, error) {
	for i := 0; i < len(tb.levels); i++ {
		l := tb.levels[i]
		top := i == len(tb.levels)-1 && l.pending == nil
		if top {
			// One node holds the whole level: it is the root.
			b, err := tb.w.alloc()
			if err != nil {
				return 0, err
			}
			return b, tb.w.write(b, l.cur, btree.NodeValidator)
		}
		last, prev := l.cur, l.pending
		if nrOf(last) < l.max/3 {
			// Even out the last two nodes: both end up at least half
			// of max, well above the minimum.
			total := nrOf(prev) + nrOf(last)
			keep := total / 2
			moveTail(prev, last, nrOf(prev)-keep, l.max, l.valueSize)
		}
		if err := l.emit(prev); err != nil {
			return 0, err
		}
		if nrOf(last) > 0 {
			if err := l.emit(last); err != nil {
				return 0, err
			}
		}
		l.pending, l.cur = nil, nil
	}
	panic("treeBuilder: no root level")
}

// moveTail moves the last k entries of prev to the front of last.
func moveTail(prev, last []byte, k, max, vs int) {
	np, nl := nrOf(prev), nrOf(last)
	kb, vb := 32, 32+8*max
	copy(last[kb+8*k:kb+8*(k+nl)], last[kb:kb+8*nl])
	copy(last[vb+vs*k:vb+vs*(k+nl)], last[vb:vb+vs*nl])
	copy(last[kb:kb+8*k], prev[kb+8*(np-k):kb+8*np])
	copy(last[vb:vb+vs*k], prev[vb+vs*(np-k):vb+vs*np])
	setNr(prev, np-k)
	setNr(last, nl+k)
}
