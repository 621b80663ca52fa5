package spacemap

import (
	"encoding/binary"
	"errors"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/btree"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/tm"
)

// recordingDevice remembers which blocks were written since Reset, to
// check the copy-on-write promise: no block the last commit reaches is
// ever overwritten.
type recordingDevice struct {
	*bm.MemDevice
	mu      sync.Mutex
	written map[uint64]bool
}

func (d *recordingDevice) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	for b := off / bm.BlockSize; b < (off+int64(len(p))+bm.BlockSize-1)/bm.BlockSize; b++ {
		d.written[uint64(b)] = true
	}
	d.mu.Unlock()
	return d.MemDevice.WriteAt(p, off)
}

// testSuperblock holds the two space map roots and the test trees' roots.
var testSuperblock bm.Validator = &bm.StampedValidator{TypeName: "test superblock", Xor: 1}

type pool struct {
	t     *testing.T
	dev   *recordingDevice
	bm    *bm.Manager
	tm    *tm.Manager
	msm   *Metadata
	dsm   *Disk
	trees []uint64 // roots of test trees; a root may appear several times (shared)
	info  *btree.Info
	data  map[uint64]uint32 // model of the data space map
}

const testDataBlocks = 3*EntriesPerBlock + 77

func newPool(t *testing.T, metaBlocks uint64) *pool {
	dev := &recordingDevice{MemDevice: bm.NewMemDevice(int64(metaBlocks) * bm.BlockSize), written: map[uint64]bool{}}
	b := bm.New(dev, metaBlocks, bm.Options{CacheBytes: 256 * bm.BlockSize})
	tmgr, msm, err := CreateMetadata(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	dsm, err := CreateDisk(tmgr, testDataBlocks)
	if err != nil {
		t.Fatal(err)
	}
	p := &pool{t: t, dev: dev, bm: b, tm: tmgr, msm: msm, dsm: dsm, data: map[uint64]uint32{}}
	p.info = &btree.Info{TM: tmgr, Levels: 1, Value: btree.ValueType{Size: 8}}
	p.commit()
	return p
}

func (p *pool) commit() {
	p.t.Helper()
	if err := p.dsm.Commit(); err != nil {
		p.t.Fatal(err)
	}
	if err := p.tm.PreCommit(); err != nil {
		p.t.Fatal(err)
	}
	sb, err := p.bm.WriteLockZero(0, testSuperblock)
	if err != nil {
		p.t.Fatal(err)
	}
	d := sb.Data()
	p.msm.Root().Encode(d[16:])
	p.dsm.Root().Encode(d[48:])
	binary.LittleEndian.PutUint32(d[80:], uint32(len(p.trees)))
	for i, r := range p.trees {
		binary.LittleEndian.PutUint64(d[88+8*i:], r)
	}
	if err := p.tm.Commit(sb); err != nil {
		p.t.Fatal(err)
	}
}

// reopen opens everything again from what is on the device.
func (p *pool) reopen() {
	p.t.Helper()
	b := bm.New(p.dev, p.bm.NrBlocks(), bm.Options{CacheBytes: 256 * bm.BlockSize})
	sb, err := b.ReadLock(0, testSuperblock)
	if err != nil {
		p.t.Fatal(err)
	}
	d := sb.Data()
	mr, _ := DecodeRoot(d[16:])
	dr, _ := DecodeRoot(d[48:])
	n := binary.LittleEndian.Uint32(d[80:])
	trees := make([]uint64, n)
	for i := range trees {
		trees[i] = binary.LittleEndian.Uint64(d[88+8*i:])
	}
	b.Unlock(sb)
	tmgr, msm, err := OpenMetadata(b, mr)
	if err != nil {
		p.t.Fatal(err)
	}
	dsm, err := OpenDisk(tmgr, dr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.bm, p.tm, p.msm, p.dsm, p.trees = b, tmgr, msm, dsm, trees
	p.info = &btree.Info{TM: tmgr, Levels: 1, Value: btree.ValueType{Size: 8}}
}

// recount returns the metadata reference counts implied by reachability.
func (p *pool) recount() map[uint64]uint32 {
	p.t.Helper()
	want := map[uint64]uint32{0: 1}
	seen := map[uint64]bool{}
	var walk func(b uint64)
	walk = func(b uint64) {
		want[b]++
		if seen[b] {
			return
		}
		seen[b] = true
		blk, err := p.tm.ReadLock(b, btree.NodeValidator)
		if err != nil {
			p.t.Fatalf("node %d: %v", b, err)
		}
		n := btree.ViewNode(blk.Data())
		if n.IsInternal() {
			for i := 0; i < n.NrEntries(); i++ {
				walk(n.Value64(i))
			}
		}
		p.tm.Unlock(blk)
	}
	for _, l := range []*ll{p.msm.ll, p.dsm.ll} {
		if l.kind == metadataIndex {
			want[l.bitmapRoot]++
		} else {
			walk(l.bitmapRoot)
		}
		for _, e := range l.entries {
			want[e.Blocknr]++
		}
		walk(l.refCountRoot)
	}
	for _, r := range p.trees {
		walk(r)
	}
	return want
}

// check compares every count with the model and the recount, the
// allocation totals with the counts, and the kernel's nr_free hint with
// the bitmaps.
func (p *pool) check() {
	p.t.Helper()
	want := p.recount()
	var allocated uint64
	for b := uint64(0); b < p.msm.NrBlocks(); b++ {
		c, err := p.msm.Count(b)
		if err != nil {
			p.t.Fatal(err)
		}
		if c != want[b] {
			p.t.Fatalf("metadata block %d: count %d, reachable %d times", b, c, want[b])
		}
		if c > 0 {
			allocated++
		}
	}
	if allocated != p.msm.NrAllocated() {
		p.t.Fatalf("metadata nr_allocated %d, counted %d", p.msm.NrAllocated(), allocated)
	}
	allocated = 0
	for b := uint64(0); b < p.dsm.NrBlocks(); b++ {
		c, err := p.dsm.Count(b)
		if err != nil {
			p.t.Fatal(err)
		}
		if c != p.data[b] {
			p.t.Fatalf("data block %d: count %d, model %d", b, c, p.data[b])
		}
		if c > 0 {
			allocated++
		}
	}
	if allocated != p.dsm.NrAllocated() {
		p.t.Fatalf("data nr_allocated %d, counted %d", p.dsm.NrAllocated(), allocated)
	}
	for _, l := range []*ll{p.msm.ll, p.dsm.ll} {
		for i, e := range l.entries {
			blk, err := p.tm.ReadLock(e.Blocknr, BitmapValidator)
			if err != nil {
				p.t.Fatal(err)
			}
			used := 0
			for j := uint64(0); j < EntriesPerBlock; j++ {
				if BitmapEntry(blk.Data(), j) != 0 {
					used++
				}
			}
			p.tm.Unlock(blk)
			if int(e.NrFree) != EntriesPerBlock-used {
				p.t.Fatalf("bitmap %d: nr_free %d, %d entries used", i, e.NrFree, used)
			}
		}
	}
	if n := p.bm.LockedBlocks(); n != 0 {
		p.t.Fatalf("%d blocks left locked", n)
	}
}

func TestCreateMetadataLaysOutBlocksLikeLinux(t *testing.T) {
	dev := bm.NewMemDevice(2048 * bm.BlockSize)
	b := bm.New(dev, 2048, bm.Options{})
	tmgr, msm, err := CreateMetadata(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	dsm, err := CreateDisk(tmgr, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := msm.Root()
	if r != (Root{NrBlocks: 2048, NrAllocated: 6, BitmapRoot: 1, RefCountRoot: 2}) {
		t.Fatalf("metadata root %+v", r)
	}
	if d := dsm.Root(); d != (Root{NrBlocks: 0, NrAllocated: 0, BitmapRoot: 4, RefCountRoot: 5}) {
		t.Fatalf("data root %+v", d)
	}
	if msm.ll.entries[0] != (IndexEntry{Blocknr: 3, NrFree: EntriesPerBlock - 6, NoneFreeBefore: 6}) {
		t.Fatalf("index entry %+v", msm.ll.entries[0])
	}
}

// TestRandomOpsKeepCountsExact drives both space maps with random
// allocations, reference changes and B-tree churn (which recurses into the
// metadata space map), sharing trees so that counts pass two, and checks
// every count after each commit and reopen.
func TestRandomOpsKeepCountsExact(t *testing.T) {
	randtest.Each(t, 3, func(t *testing.T, seed uint64) {
		randomSpaceMapOps(t, seed, 25, 400)
	})
}

func randomSpaceMapOps(t *testing.T, seed uint64, rounds, ops int) {
	rng := randtest.Stream(seed, 99)
	p := newPool(t, 4096)
	p.check()
	for round := 0; round < rounds; round++ {
		committedLive := map[uint64]bool{}
		for b, c := range p.recount() {
			if c > 0 && b != 0 {
				committedLive[b] = true
			}
		}
		freedThisTransaction := map[uint64]bool{}
		clear(p.dev.written)
		for op := 0; op < ops; op++ {
			var err error
			switch x := rng.IntN(100); {
			case x < 30:
				var b uint64
				b, err = p.dsm.NewBlock()
				if err == nil {
					if p.data[b] != 0 || freedThisTransaction[b] {
						t.Fatalf("data block %d handed out again (count %d, freed this transaction %v)", b, p.data[b], freedThisTransaction[b])
					}
					p.data[b] = 1
				}
			case x < 45 && len(p.data) > 0:
				b := randomKey(rng, p.data)
				err = p.dsm.Inc(b)
				p.data[b]++
			case x < 65 && len(p.data) > 0:
				b := randomKey(rng, p.data)
				err = p.dsm.Dec(b)
				if p.data[b]--; p.data[b] == 0 {
					delete(p.data, b)
					freedThisTransaction[b] = true
				}
			case x < 80:
				// Grow or create a tree: metadata allocations.
				if len(p.trees) == 0 || rng.IntN(4) == 0 {
					var r uint64
					if r, err = btree.Empty(p.info); err == nil {
						p.trees = append(p.trees, r)
					}
					break
				}
				i := rng.IntN(len(p.trees))
				for k := 0; k < 40 && err == nil; k++ {
					p.trees[i], _, err = btree.Insert(p.info, p.trees[i], []uint64{rng.Uint64N(5000)}, btree.LE64(1))
				}
			case x < 88 && len(p.trees) > 0 && len(p.trees) < 30:
				// Share a tree: metadata counts above two.
				i := rng.IntN(len(p.trees))
				if err = p.tm.Inc(p.trees[i]); err == nil {
					p.trees = append(p.trees, p.trees[i])
				}
			case len(p.trees) > 0:
				i := rng.IntN(len(p.trees))
				err = btree.Del(p.info, p.trees[i])
				p.trees = append(p.trees[:i], p.trees[i+1:]...)
			}
			if err != nil {
				t.Fatalf("round %d op %d: %v", round, op, err)
			}
		}
		p.commit()
		for b := range p.dev.written {
			if committedLive[b] {
				t.Fatalf("round %d: block %d, live in the previous commit, was overwritten", round, b)
			}
		}
		p.check()
		if round%5 == 4 {
			p.reopen()
			p.check()
		}
	}
}

func randomKey(rng *rand.Rand, m map[uint64]uint32) uint64 {
	keys := maps.Keys(m)
	n := rng.IntN(len(m))
	for k := range keys {
		if n == 0 {
			return k
		}
		n--
	}
	panic("unreachable")
}

func TestExtendMetadataAndData(t *testing.T) {
	// A pool whose metadata map covers 1000 blocks of a 40000-block
	// device, to test extension.
	dev := &recordingDevice{MemDevice: bm.NewMemDevice(40000 * bm.BlockSize), written: map[uint64]bool{}}
	b := bm.New(dev, 1000, bm.Options{})
	tmgr, msm, err := CreateMetadata(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	dsm, err := CreateDisk(tmgr, 100)
	if err != nil {
		t.Fatal(err)
	}
	p := &pool{t: t, dev: dev, bm: b, tm: tmgr, msm: msm, dsm: dsm, data: map[uint64]uint32{}}
	p.info = &btree.Info{TM: tmgr, Levels: 1, Value: btree.ValueType{Size: 8}}
	p.commit()
	// Grow the device under the block manager, then the map: 1000 ->
	// 40000 blocks crosses two bitmap boundaries.
	p.bm = bm.New(dev, 40000, bm.Options{})
	p.reopen()
	if err := p.msm.Extend(39000); err != nil {
		t.Fatal(err)
	}
	if err := p.dsm.Extend(2 * EntriesPerBlock); err != nil {
		t.Fatal(err)
	}
	p.commit()
	p.check()
	if p.msm.NrBlocks() != 40000 || len(p.msm.ll.entries) != 3 || p.dsm.NrBlocks() != 100+2*EntriesPerBlock {
		t.Fatalf("after extend: metadata %d blocks, %d bitmaps; data %d", p.msm.NrBlocks(), len(p.msm.ll.entries), p.dsm.NrBlocks())
	}
	// Use the new space.
	for i := 0; i < 3000; i++ {
		blk, err := p.tm.NewBlock(btree.NodeValidator)
		if err != nil {
			t.Fatal(err)
		}
		p.tm.Unlock(blk)
		if err := p.tm.Dec(blk.Location()); err != nil {
			t.Fatal(err)
		}
	}
	p.commit()
	p.reopen()
	p.check()
}

func TestDataSpaceMapRunsOut(t *testing.T) {
	p := newPool(t, 1024)
	var err error
	for i := 0; i < testDataBlocks+1 && err == nil; i++ {
		var b uint64
		if b, err = p.dsm.NewBlock(); err == nil {
			p.data[b] = 1
		}
	}
	if !errors.Is(err, ErrNoSpace) || p.dsm.NrFree() != 0 {
		t.Fatalf("got %v with %d free", err, p.dsm.NrFree())
	}
	p.commit()
	p.check()
}

// A block allocated and freed in one transaction is free in the committed
// state too, but it must still wait for the commit: I/O that looked it up
// may be in flight, and its discard may be passed down after the commit.
func TestBlockFreedAgainWaitsForCommit(t *testing.T) {
	p := newPool(t, 1024)
	for range testDataBlocks - 1 {
		b, err := p.dsm.NewBlock()
		if err != nil {
			t.Fatal(err)
		}
		p.data[b] = 1
	}
	p.commit()
	last, err := p.dsm.NewBlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.dsm.Dec(last); err != nil {
		t.Fatal(err)
	}
	if b, err := p.dsm.NewBlock(); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("block %d freed in this transaction handed out again before the commit (err %v)", b, err)
	}
	if n := p.dsm.NrFree(); n != 0 {
		t.Fatalf("%d blocks free before the commit, want 0", n)
	}
	p.commit()
	b, err := p.dsm.NewBlock()
	if err != nil || b != last {
		t.Fatalf("after the commit got block %d, %v; want %d", b, err, last)
	}
	p.data[b] = 1
	p.commit()
	p.check()
}
