package btree

import (
	"bytes"
	"errors"
	"testing"

	"github.com/thind-storage/thind/bm"
)

// FuzzNode checks arbitrary bytes with the node validator. Whatever it
// accepts must be safe to read: every accessor of every entry stays in the
// block, and a node rebuilt from the entries re-validates.
func FuzzNode(f *testing.F) {
	seed := make([]byte, bm.BlockSize)
	initNode(node(seed), LeafNode, 8)
	node(seed).insertAt(0, 7, LE64(99))
	NodeValidator.Prepare(seed, 3)
	f.Add(seed, uint64(3))
	internal := make([]byte, bm.BlockSize)
	initNode(node(internal), InternalNode, 8)
	node(internal).insertAt(0, 1, LE64(5))
	node(internal).insertAt(1, 9, LE64(6))
	NodeValidator.Prepare(internal, 4)
	f.Add(internal, uint64(4))
	f.Fuzz(func(t *testing.T, data []byte, loc uint64) {
		block := make([]byte, bm.BlockSize)
		copy(block, data)
		err := NodeValidator.Check(block, loc)
		if err != nil {
			if !errors.Is(err, bm.ErrCorruption) {
				t.Fatalf("rejection is not a corruption error: %v", err)
			}
			return
		}
		n := node(block)
		nr := n.nrEntries()
		rebuilt := make([]byte, bm.BlockSize)
		r := node(rebuilt)
		initNode(r, n.flags(), n.valueSize())
		r.setMaxEntries(n.maxEntries())
		for i := 0; i < nr; i++ {
			if err := r.insertAt(i, n.key(i), n.value(i)); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
		}
		NodeValidator.Prepare(rebuilt, loc)
		if err := NodeValidator.Check(rebuilt, loc); err != nil {
			t.Fatalf("rebuilt node rejected: %v", err)
		}
		if !bytes.Equal(r.keys(0, nr), n.keys(0, nr)) || !bytes.Equal(r.values(0, nr), n.values(0, nr)) {
			t.Fatal("rebuilt node differs")
		}
	})
}
