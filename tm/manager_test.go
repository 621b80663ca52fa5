package tm_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/spacemap"
	"github.com/thind-storage/thind/tm"
)

// testValidator stamps the blocks these tests write, as every dm-thin
// block type does.
var testValidator = &bm.StampedValidator{TypeName: "tm-test", Xor: 0x7e57}

const nrBlocks = 256

// events records the device calls a transaction makes, in order: "w<n>"
// for a write of block n, "sync" for a Sync. It observes a real MemDevice
// and changes nothing.
type events struct {
	*bm.MemDevice
	mu  sync.Mutex
	log []string
}

func (d *events) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	for b := off / bm.BlockSize; b < (off+int64(len(p)))/bm.BlockSize; b++ {
		d.log = append(d.log, fmt.Sprintf("w%d", b))
	}
	d.mu.Unlock()
	return d.MemDevice.WriteAt(p, off)
}

func (d *events) Sync() error {
	d.mu.Lock()
	d.log = append(d.log, "sync")
	d.mu.Unlock()
	return d.MemDevice.Sync()
}

func (d *events) take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.log
	d.log = nil
	return l
}

// newManager formats a metadata space map on a memory device and returns
// its transaction manager, with block 0 kept for the superblock.
func newManager(t *testing.T) (*tm.Manager, *events) {
	t.Helper()
	dev := &events{MemDevice: bm.NewMemDevice(nrBlocks * bm.BlockSize)}
	b := bm.New(dev, nrBlocks, bm.Options{})
	t.Cleanup(func() { b.Close() })
	m, _, err := spacemap.CreateMetadata(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	commit(t, m)
	dev.take()
	return m, dev
}

// commit ends the transaction with a superblock holding only its stamp.
func commit(t *testing.T, m *tm.Manager) {
	t.Helper()
	if err := m.PreCommit(); err != nil {
		t.Fatal(err)
	}
	sb, err := m.BM().WriteLockZero(0, testValidator)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Commit(sb); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, m *tm.Manager, b uint64) uint32 {
	t.Helper()
	n, err := m.Count(b)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newFilled allocates a block, fills its payload with c and unlocks it.
func newFilled(t *testing.T, m *tm.Manager, c byte) uint64 {
	t.Helper()
	blk, err := m.NewBlock(testValidator)
	if err != nil {
		t.Fatal(err)
	}
	fill(blk, c)
	loc := blk.Location()
	m.Unlock(blk)
	return loc
}

// fill sets the bytes after the stamp (checksum and location).
func fill(blk bm.Block, c byte) {
	for i := 16; i < len(blk.Data()); i++ {
		blk.Data()[i] = c
	}
}

func payload(t *testing.T, m *tm.Manager, b uint64) []byte {
	t.Helper()
	blk, err := m.ReadLock(b, testValidator)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unlock(blk)
	return bytes.Clone(blk.Data()[16:])
}

func TestNewBlockIsZeroedCountedAndAShadow(t *testing.T) {
	m, _ := newManager(t)
	blk, err := m.NewBlock(testValidator)
	if err != nil {
		t.Fatal(err)
	}
	b := blk.Location()
	if !bytes.Equal(blk.Data(), make([]byte, bm.BlockSize)) {
		t.Error("a new block is not zeroed")
	}
	m.Unlock(blk)
	if b == 0 {
		t.Fatal("NewBlock handed out the superblock")
	}
	if n := count(t, m, b); n != 1 {
		t.Errorf("new block %d has count %d, want 1", b, n)
	}
	if !m.IsShadow(b) {
		t.Errorf("new block %d is not a shadow of this transaction", b)
	}
	// A new block is written in place until the commit.
	sh, inc, err := m.Shadow(b, testValidator)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unlock(sh)
	if sh.Location() != b || inc {
		t.Errorf("shadowing new block %d gave block %d (inc %v), want it in place", b, sh.Location(), inc)
	}
	if n := count(t, m, b); n != 1 {
		t.Errorf("shadowing in place changed the count to %d", n)
	}
}

func TestShadowCopiesACommittedBlock(t *testing.T) {
	m, _ := newManager(t)
	orig := newFilled(t, m, 0xab)
	commit(t, m)
	if m.IsShadow(orig) {
		t.Fatal("commit did not start a new transaction: block still a shadow")
	}

	sh, inc, err := m.Shadow(orig, testValidator)
	if err != nil {
		t.Fatal(err)
	}
	copyLoc := sh.Location()
	if copyLoc == orig || inc {
		t.Fatalf("shadow of committed block %d is block %d (inc %v), want a copy and no inc", orig, copyLoc, inc)
	}
	if !bytes.Equal(sh.Data()[16:], bytes.Repeat([]byte{0xab}, bm.BlockSize-16)) {
		t.Error("the shadow is not a copy of the original")
	}
	fill(sh, 0xcd)
	m.Unlock(sh)

	if n := count(t, m, orig); n != 0 {
		t.Errorf("original %d keeps count %d after its only referrer moved to the copy", orig, n)
	}
	if n := count(t, m, copyLoc); n != 1 {
		t.Errorf("copy %d has count %d, want 1", copyLoc, n)
	}
	if !m.IsShadow(copyLoc) {
		t.Error("the copy is not a shadow of this transaction")
	}
	// The committed block is never written in place.
	if got := payload(t, m, orig); got[0] != 0xab {
		t.Errorf("the committed original changed to %#x", got[0])
	}
	// A second shadow of the copy is in place.
	again, inc, err := m.Shadow(copyLoc, testValidator)
	if err != nil {
		t.Fatal(err)
	}
	if again.Location() != copyLoc || inc {
		t.Errorf("re-shadowing %d gave %d (inc %v), want in place", copyLoc, again.Location(), inc)
	}
	m.Unlock(again)
}

func TestShadowOfASharedBlockCopiesAndReportsIt(t *testing.T) {
	m, _ := newManager(t)
	b := newFilled(t, m, 1)
	// Shared within the transaction that made it: still copied, as a
	// second referrer may read it.
	if err := m.Inc(b); err != nil {
		t.Fatal(err)
	}
	if shared, err := m.IsShared(b); err != nil || !shared {
		t.Fatalf("IsShared(%d) = %v, %v after Inc; want true", b, shared, err)
	}
	sh, inc, err := m.Shadow(b, testValidator)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unlock(sh)
	if sh.Location() == b || !inc {
		t.Errorf("shadow of shared block %d: block %d, inc %v; want a copy and inc", b, sh.Location(), inc)
	}
	if n := count(t, m, b); n != 1 {
		t.Errorf("shared original has count %d after the shadow, want 1", n)
	}
	if shared, err := m.IsShared(b); err != nil || shared {
		t.Errorf("IsShared(%d) = %v, %v after the shadow; want false", b, shared, err)
	}
}

func TestIncDecCount(t *testing.T) {
	m, _ := newManager(t)
	b := newFilled(t, m, 2)
	for i, op := range []struct {
		f    func(uint64) error
		want uint32
	}{{m.Inc, 2}, {m.Inc, 3}, {m.Dec, 2}, {m.Dec, 1}, {m.Dec, 0}} {
		if err := op.f(b); err != nil {
			t.Fatal(err)
		}
		if n := count(t, m, b); n != op.want {
			t.Errorf("step %d: count %d, want %d", i, n, op.want)
		}
	}
	commit(t, m)
	if n := count(t, m, b); n != 0 {
		t.Errorf("after commit the freed block has count %d", n)
	}
}

// TestCommitWritesTheSuperblockLast: every dirty block is written and
// synced before the superblock, which is then synced itself, so the
// superblock never names a block the disk lacks.
func TestCommitWritesTheSuperblockLast(t *testing.T) {
	m, dev := newManager(t)
	var made []uint64
	for c := range byte(8) {
		made = append(made, newFilled(t, m, c+1))
	}
	commit(t, m)
	log := dev.take()
	n := len(log)
	if n < 4 || log[n-1] != "sync" || log[n-2] != "w0" || log[n-3] != "sync" {
		t.Fatalf("commit's device calls end %v, want ..., sync, w0, sync", log[max(0, n-4):])
	}
	written := map[string]bool{}
	for i, e := range log[:n-2] {
		if e == "w0" {
			t.Errorf("superblock written at call %d of %d, before the other blocks were synced: %v", i, n, log)
		}
		written[e] = true
	}
	for _, b := range made {
		if !written[fmt.Sprintf("w%d", b)] {
			t.Errorf("block %d made in the transaction was not written before the superblock: %v", b, log)
		}
	}
	for _, b := range made {
		if m.IsShadow(b) {
			t.Errorf("block %d is still a shadow after commit", b)
		}
	}
}

// TestCommitCutBeforeTheSuperblock: a crash after the data blocks but
// before the superblock leaves the previous superblock on disk.
func TestCommitCutBeforeTheSuperblock(t *testing.T) {
	m, dev := newManager(t)
	old := payload(t, m, 0)
	b := newFilled(t, m, 9)
	if err := m.PreCommit(); err != nil {
		t.Fatal(err)
	}
	sb, err := m.BM().WriteLockZero(0, testValidator)
	if err != nil {
		t.Fatal(err)
	}
	sb.Data()[100] = 0x55
	// Count the blocks the flush will write, then cut after them.
	dirty := m.BM().Stats().DirtyBlocks - 1
	dev.CutPowerAfter(dirty)
	if err := m.Commit(sb); !errors.Is(err, bm.ErrPowerCut) {
		t.Fatalf("commit across a power cut: %v, want ErrPowerCut", err)
	}
	after := bm.New(dev.MemDevice.CrashClone(0, nil), nrBlocks, bm.Options{})
	defer after.Close()
	blk, err := after.ReadLock(0, testValidator)
	if err != nil {
		t.Fatal(err)
	}
	defer after.Unlock(blk)
	if !bytes.Equal(blk.Data()[16:], old) {
		t.Errorf("the superblock of the cut commit reached the disk (block %d was in it)", b)
	}
}

func TestAbortForgetsTheTransaction(t *testing.T) {
	m, dev := newManager(t)
	b := newFilled(t, m, 3)
	m.Abort()
	if m.IsShadow(b) {
		t.Errorf("block %d is still a shadow after Abort", b)
	}
	if st := m.BM().Stats(); st.DirtyBlocks != 0 {
		t.Errorf("%d dirty blocks after Abort", st.DirtyBlocks)
	}
	if log := dev.take(); len(log) != 0 {
		t.Errorf("Abort wrote to the device: %v", log)
	}
}

// TestShadowOfACorruptBlockChangesNoCount: a block that fails its
// validator fails the shadow before any reference count moves.
func TestShadowOfACorruptBlockChangesNoCount(t *testing.T) {
	m, dev := newManager(t)
	b := newFilled(t, m, 4)
	commit(t, m)
	m.BM().Forget()
	if _, err := dev.WriteAt(bytes.Repeat([]byte{0xff}, 64), int64(b)*bm.BlockSize+64); err != nil {
		t.Fatal(err)
	}
	before := m.BM().Stats().DirtyBlocks
	_, _, err := m.Shadow(b, testValidator)
	var ce *bm.ChecksumError
	if !errors.As(err, &ce) || ce.Block != b {
		t.Fatalf("shadow of corrupt block %d: %v, want a ChecksumError naming it", b, err)
	}
	if n := count(t, m, b); n != 1 {
		t.Errorf("failed shadow changed the count of %d to %d", b, n)
	}
	if after := m.BM().Stats().DirtyBlocks; after != before {
		t.Errorf("failed shadow dirtied %d blocks", after-before)
	}
}
