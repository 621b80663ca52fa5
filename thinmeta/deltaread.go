package thinmeta

import (
	"errors"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/btree"
)

// leafReadAhead is the most blocks a cursor reads at once for the leaves
// under one node: a tree written in key order has runs of them in
// consecutive blocks, and one large read costs far less than as many
// single ones through the cache.
const leafReadAhead = 64

// leafReadAheadFirst is the window of a read that does not continue the
// last one. The window doubles, up to leafReadAhead, while reads keep
// continuing each other, as the kernel's readahead ramps up on a
// sequential stream: a comparison that only dips into a few changed
// leaves among shared ones (whose blocks lie between them) then reads
// little it does not use, and one that walks every leaf soon reads in
// large windows.
const leafReadAheadFirst = 8

// leafReader reads a cursor's leaves straight from a read-only device, a
// window of blocks at a time, into one buffer it reuses. A leaf read
// once by a comparison is not read again, so the cache (a buffer, a page
// fault and a map entry per block) is no help; the device does not
// change under a read-only manager, so what it returns is what the cache
// would. Every leaf is still checked with NodeValidator (location and
// checksum) and by the cursor's node checks.
//
// A cursor holds one leaf at a time (it leaves a leaf before it descends
// again), so the window is only refilled once the leaf it held is done.
type leafReader struct {
	dev    bm.Device
	buf    []byte
	first  uint64 // block at buf[0]
	n      uint64 // blocks in buf
	window uint64 // blocks the next read may take
}

// newLeafReader returns a reader for the leaves of trees in t's blocks,
// or nil if t's block manager may hold blocks not yet on the device.
func newLeafReader(b *bm.Manager) *leafReader {
	if !b.ReadOnly() {
		return nil
	}
	return &leafReader{dev: b.Device()}
}

// leafSiblings are the leaves that follow one in key order: the
// children of node f from index from on (none if f is nil).
type leafSiblings struct {
	f    *deltaFrame
	from int
}

// read returns leaf block b, checked with NodeValidator. Those of its
// siblings within the window starting at b are read with it.
func (r *leafReader) read(b uint64, nrBlocks uint64, siblings leafSiblings) ([]byte, error) {
	if b < r.first || b >= r.first+r.n {
		if r.n > 0 && b == r.first+r.n {
			r.window = min(2*r.window, leafReadAhead)
		} else {
			r.window = leafReadAheadFirst
		}
		n := uint64(1)
		for i := siblings.from; siblings.f != nil && i < siblings.f.n.NrEntries(); i++ {
			s := siblings.f.n.Value64(i)
			if s < b || s >= b+r.window {
				break
			}
			n = max(n, s-b+1)
		}
		n = min(n, nrBlocks-b)
		if r.buf == nil {
			r.buf = make([]byte, leafReadAhead*bm.BlockSize)
		}
		r.n = 0
		got, err := r.dev.ReadAt(r.buf[:n*bm.BlockSize], int64(b)*bm.BlockSize)
		if got != int(n*bm.BlockSize) {
			if err == nil {
				err = errors.New("short read")
			}
			return nil, &bm.IOError{Block: b, Op: "read", Err: err}
		}
		r.first, r.n = b, n
	}
	off := (b - r.first) * bm.BlockSize
	data := r.buf[off : off+bm.BlockSize]
	if err := btree.NodeValidator.Check(data, b); err != nil {
		return nil, err
	}
	return data, nil
}
