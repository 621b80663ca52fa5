package btree

import (
	"encoding/binary"
	"fmt"

	"github.com/thind-storage/thind/bm"
)

// Node header (struct node_header, dm-btree-internal.h), 32 bytes:
//
//	0  le32 csum        8  le64 blocknr      20 le32 max_entries
//	4  le32 flags       16 le32 nr_entries   24 le32 value_size
//	                                         28 le32 padding
//
// keys[max_entries] (le64) follow at 32, then values[max_entries].
const (
	offFlags      = 4
	offNrEntries  = 16
	offMaxEntries = 20
	offValueSize  = 24
	headerSize    = 32
)

// Node flags.
const (
	InternalNode = 1
	LeafNode     = 2
)

// CalcMaxEntries is the node capacity for a value size: as many entries as
// fit, rounded down to a multiple of three (calc_max_entries), which suits
// repeated insert/remove cycles better than 2n+1.
func CalcMaxEntries(valueSize int) int {
	total := (bm.BlockSize - headerSize) / (8 + valueSize)
	return 3 * (total / 3)
}

// node is a view of a block's bytes as a B-tree node.
type node []byte

func (n node) flags() uint32     { return binary.LittleEndian.Uint32(n[offFlags:]) }
func (n node) isLeaf() bool      { return n.flags()&LeafNode != 0 }
func (n node) isInternal() bool  { return n.flags()&InternalNode != 0 }
func (n node) nrEntries() int    { return int(binary.LittleEndian.Uint32(n[offNrEntries:])) }
func (n node) maxEntries() int   { return int(binary.LittleEndian.Uint32(n[offMaxEntries:])) }
func (n node) valueSize() int    { return int(binary.LittleEndian.Uint32(n[offValueSize:])) }
func (n node) setFlags(f uint32) { binary.LittleEndian.PutUint32(n[offFlags:], f) }
func (n node) setNrEntries(c int) {
	binary.LittleEndian.PutUint32(n[offNrEntries:], uint32(c))
}
func (n node) setMaxEntries(c int) {
	binary.LittleEndian.PutUint32(n[offMaxEntries:], uint32(c))
}
func (n node) setValueSize(s int) {
	binary.LittleEndian.PutUint32(n[offValueSize:], uint32(s))
}

func (n node) key(i int) uint64 { return binary.LittleEndian.Uint64(n[headerSize+8*i:]) }
func (n node) setKey(i int, k uint64) {
	binary.LittleEndian.PutUint64(n[headerSize+8*i:], k)
}

func (n node) keys(i, j int) []byte { return n[headerSize+8*i : headerSize+8*j] }

func (n node) valueBase() int { return headerSize + 8*n.maxEntries() }

// value returns value i; values i..j-1 are contiguous (values(i, j)).
func (n node) value(i int) []byte {
	vs := n.valueSize()
	off := n.valueBase() + vs*i
	return n[off : off+vs]
}

func (n node) values(i, j int) []byte {
	vs := n.valueSize()
	b := n.valueBase()
	return n[b+vs*i : b+vs*j]
}

func (n node) value64(i int) uint64 {
	return binary.LittleEndian.Uint64(n[n.valueBase()+8*i:])
}

func (n node) setValue64(i int, v uint64) {
	binary.LittleEndian.PutUint64(n[n.valueBase()+8*i:], v)
}

// initNode formats an empty node.
func initNode(n node, flags uint32, valueSize int) {
	n.setFlags(flags)
	n.setNrEntries(0)
	n.setMaxEntries(CalcMaxEntries(valueSize))
	n.setValueSize(valueSize)
}

// copyHeader makes dst a node of the same shape as src, with no entries.
func copyHeader(dst, src node) {
	copy(dst[offFlags:offFlags+4], src[offFlags:offFlags+4])
	dst.setNrEntries(0)
	copy(dst[offMaxEntries:headerSize], src[offMaxEntries:headerSize])
}

// bsearch returns the index of key if present, otherwise the greatest
// index whose key is below it (lower bound, possibly -1) or the least one
// above it (upper bound, possibly nr_entries).
func (n node) bsearch(key uint64, wantHi bool) int {
	lo, hi := -1, n.nrEntries()
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		k := n.key(mid)
		if k == key {
			return mid
		}
		if k < key {
			lo = mid
		} else {
			hi = mid
		}
	}
	if wantHi {
		return hi
	}
	return lo
}

func (n node) lowerBound(key uint64) int { return n.bsearch(key, false) }
func (n node) upperBound(key uint64) int { return n.bsearch(key, true) }

// insertAt inserts key/value at index i, shifting later entries up.
func (n node) insertAt(i int, key uint64, value []byte) error {
	nr, maxE := n.nrEntries(), n.maxEntries()
	if i > nr || i >= maxE || nr >= maxE {
		return fmt.Errorf("btree: node full: insert at %d of %d (max %d)", i, nr, maxE)
	}
	vs := n.valueSize()
	if i < nr {
		copy(n.keys(i+1, nr+1), n.keys(i, nr))
		copy(n.values(i+1, nr+1), n.values(i, nr))
	}
	n.setKey(i, key)
	copy(n[n.valueBase()+vs*i:n.valueBase()+vs*(i+1)], value)
	n.setNrEntries(nr + 1)
	return nil
}

// deleteAt removes entry i, shifting later entries down.
func (n node) deleteAt(i int) {
	nr := n.nrEntries()
	if i+1 < nr {
		copy(n.keys(i, nr-1), n.keys(i+1, nr))
		copy(n.values(i, nr-1), n.values(i+1, nr))
	}
	n.setNrEntries(nr - 1)
}

// copyEntries copies count entries from src[srcOff:] to dst[dstOff:]; the
// regions must not overlap.
func copyEntries(dst node, dstOff int, src node, srcOff, count int) {
	copy(dst.keys(dstOff, dstOff+count), src.keys(srcOff, srcOff+count))
	copy(dst.values(dstOff, dstOff+count), src.values(srcOff, srcOff+count))
}

// shiftDown drops the first count entries.
func (n node) shiftDown(count int) {
	nr := n.nrEntries()
	copy(n.keys(0, nr-count), n.keys(count, nr))
	copy(n.values(0, nr-count), n.values(count, nr))
}

// shiftUp opens count empty slots at the start.
func (n node) shiftUp(count int) {
	nr := n.nrEntries()
	copy(n.keys(count, nr+count), n.keys(0, nr))
	copy(n.values(count, nr+count), n.values(0, nr))
}
