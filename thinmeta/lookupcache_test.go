package thinmeta

import (
	"testing"
)

// TestLookupCacheBuckets: neighbouring blocks share a bucket and each keeps
// its own value; a block of another group takes the bucket over; forget
// drops one block only; a new generation matches nothing of the old.
func TestLookupCacheBuckets(t *testing.T) {
	c := newLookupCache()
	gen := newGen()
	base := uint64(10 * bucketBlocks)
	for i := range uint64(bucketBlocks) {
		c.fill(gen, base+i, 100+i)
	}
	for i := range uint64(bucketBlocks) {
		if v, ok := c.get(gen, base+i); !ok || v != 100+i {
			t.Fatalf("block %d: got %d, %v; want %d", base+i, v, ok, 100+i)
		}
	}
	c.forget(gen, base+1)
	if _, ok := c.get(gen, base+1); ok {
		t.Fatal("forgotten block still cached")
	}
	if v, ok := c.get(gen, base+2); !ok || v != 102 {
		t.Fatalf("forget dropped a neighbour: %d, %v", v, ok)
	}
	if _, ok := c.get(gen+1, base+2); ok {
		t.Fatal("a block matched under another generation")
	}
	// The bucket that follows in the table belongs to the next group;
	// a group a whole table away lands on this bucket and evicts it.
	far := base + cacheBuckets*bucketBlocks
	c.set(gen, far, 7)
	if v, ok := c.get(gen, far); !ok || v != 7 {
		t.Fatalf("set block: got %d, %v", v, ok)
	}
	for i := range uint64(bucketBlocks) {
		if _, ok := c.get(gen, base+i); ok {
			t.Fatalf("block %d survived its bucket's takeover", base+i)
		}
	}
	// A new generation (the device's after a range removal) sees none of
	// the old one's values.
	later := newGen()
	if _, ok := c.get(later, far); ok {
		t.Fatal("a new generation found the old one's value")
	}
	c.fill(later, far, 8)
	if v, ok := c.get(later, far); !ok || v != 8 {
		t.Fatalf("new generation: got %d, %v", v, ok)
	}
}
