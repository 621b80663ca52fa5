package bioprison_test

import (
	"fmt"
	"testing"

	"github.com/thind-storage/thind/bioprison"
	"github.com/thind-storage/thind/discard"
)

// request stands in for the engine's request: the prison only stores
// pointers to it.
type request struct {
	name  string
	block uint64 // virtual block
	entry bioprison.DeferredEntry
}

// A write to an unprovisioned block: the first write holds the virtual
// cell while the block is allocated and the mapping inserted; a second
// write to the block waits in the cell without a goroutine, and is handed
// back for re-queueing when the holder is done.
func ExamplePrison_provision() {
	const thin = 1
	prison := bioprison.New[*request](bioprison.Options{})
	mapping := map[uint64]uint64{} // virtual -> data, a stand-in for the btree
	key := func(r *request) bioprison.Key { return bioprison.BlockKey(bioprison.Virtual, thin, r.block) }

	w1, w2 := &request{name: "w1", block: 7}, &request{name: "w2", block: 7}
	c, isHolder, _ := prison.Detain(key(w1), w1)
	fmt.Println("w1 holds block 7:", isHolder, "- unmapped, so it provisions data block 100")
	_, isHolder, _ = prison.Detain(key(w2), w2)
	fmt.Println("w2 holds block 7:", isHolder)

	// Zeroing the new block, writing w1's data and inserting the mapping
	// take a while; when they are done, w1 completes and its waiters go
	// back on the queue.
	mapping[7] = 100
	queue := prison.ReleaseNoHolder(c, nil)
	for _, r := range queue {
		c, isHolder, _ := prison.Detain(key(r), r)
		if isHolder {
			fmt.Println(r.name, "writes to mapped data block", mapping[r.block])
			prison.ReleaseNoHolder(c, nil) // then issue r; nothing else waits
		}
	}
	// Output:
	// w1 holds block 7: true - unmapped, so it provisions data block 100
	// w2 holds block 7: false
	// w2 writes to mapped data block 100
}

// A write to a block shared with a snapshot: the write holds the virtual
// cell and the data cell of the shared block, copies it to a new block, and
// queues the remap on the shared-read deferred set so that it waits for the
// read still using the old block. Reads of shared blocks count themselves
// in the set while the cell lock is held (VisitRelease does this for
// waiters being released).
func ExampleDeferredSet_breakSharing() {
	const thin, shared = 1, 40
	prison := bioprison.New[*request](bioprison.Options{})
	var sharedReads bioprison.DeferredSet[func()]

	// A read of the shared block is in flight.
	read := &request{name: "r1", block: 3}
	read.entry = sharedReads.Inc()

	// The write arrives: lock the virtual block, then the shared data block.
	w := &request{name: "w1", block: 3}
	vc, _, _ := prison.Detain(bioprison.BlockKey(bioprison.Virtual, thin, w.block), w)
	dc, isHolder, _ := prison.Detain(bioprison.BlockKey(bioprison.Data, thin, shared), w)
	if !isHolder {
		// Sharing is already being broken: let the data cell's holder
		// re-queue w, and free the virtual block meanwhile.
		prison.ReleaseNoHolder(vc, nil)
		return
	}
	fmt.Println("w1 copies data block", shared, "to 41")
	remap := func() {
		fmt.Println("remap virtual block 3 to data block 41; w1 completes")
		prison.ReleaseNoHolder(dc, nil)
		prison.ReleaseNoHolder(vc, nil)
	}
	if !sharedReads.AddWork(remap) {
		remap() // no shared reads in flight
	}

	fmt.Println("r1 completes")
	for _, job := range sharedReads.Dec(read.entry, nil) {
		job()
	}
	fmt.Printf("%+v\n", prison.Stats())
	// Output:
	// w1 copies data block 40 to 41
	// r1 completes
	// remap virtual block 3 to data block 41; w1 completes
	// {Cells:0 Waiters:0}
}

// A discard with passdown: split the byte range, lock each chunk of whole
// blocks with one range cell, wait on the all-I/O deferred set for writes
// in flight, then unmap and pass down the data blocks whose count reached
// zero, merged into extents.
func ExampleDeferredSet_discardPassdown() {
	const thin = 1
	g, _ := discard.NewGeometry(64<<10, 1<<30)
	prison := bioprison.New[*request](bioprison.Options{})
	var allIO bioprison.DeferredSet[func()]
	mapping := map[uint64]uint64{1: 10, 2: 11, 3: 12, 5: 20} // virtual -> data
	refs := map[uint64]int{10: 1, 11: 1, 12: 2, 20: 1}       // 12 is shared with a snapshot

	write := allIO.Inc() // a write to block 2 is in flight

	s, _ := g.Split(1000, 6<<16) // bytes 1000 .. 394216: blocks 1-5 whole
	fmt.Println("unmap", s.Blocks, "ignore", s.Head, s.Tail)
	d := &request{name: "d1"}
	for chunk := range s.Blocks.Chunks() {
		c, isHolder, err := prison.Detain(bioprison.Key{
			Space: bioprison.Virtual, Dev: thin, Begin: chunk.Begin, End: chunk.End}, d)
		if err != nil || !isHolder {
			continue // the engine re-queues d when the holder releases
		}
		job := func() {
			var freed discard.ExtentBuilder
			for v := chunk.Begin; v < chunk.End; v++ {
				if db, ok := mapping[v]; ok {
					delete(mapping, v)
					if refs[db]--; refs[db] == 0 {
						freed.Add(db)
					}
				}
			}
			holes, _ := freed.AppendBytes(nil, g.BlockSize())
			fmt.Println("pass down data extents", freed.Extents(), "bytes", holes)
			prison.Release(c, nil)
		}
		if !allIO.AddWork(job) {
			job()
		}
	}
	fmt.Println("write completes")
	for _, job := range allIO.Dec(write, nil) {
		job()
	}
	// Output:
	// unmap [1,6) ignore [1000,65536) [393216,394216)
	// write completes
	// pass down data extents [[10,12) [20,21)] bytes [[655360,786432) [1310720,1376256)]
}

// The discard package chunks for the prison: the limits must agree.
func TestDiscardChunksFitPrisonCells(t *testing.T) {
	if discard.MaxChunk != bioprison.MaxRange {
		t.Fatalf("discard.MaxChunk %d != bioprison.MaxRange %d", discard.MaxChunk, bioprison.MaxRange)
	}
}
