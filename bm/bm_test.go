package bm

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/thind-storage/thind/internal/fixture"
)

var testValidator = &StampedValidator{TypeName: "test", Xor: 12345}

func TestChecksumMatchesKernelSuperblock(t *testing.T) {
	img := fixture.Meta(t, "kernel-small")
	sb := img[:BlockSize]
	const superblockXor = 160774
	if got, want := ComputeChecksum(sb, superblockXor), StoredChecksum(sb); got != want {
		t.Fatalf("computed %d, stored %d", got, want)
	}
	v := &StampedValidator{TypeName: "superblock", Xor: superblockXor}
	if err := v.Check(sb, 0); err != nil {
		t.Fatal(err)
	}
	var le *LocationError
	if err := v.Check(sb, 1); !errors.As(err, &le) || le.Got != 0 || le.Block != 1 {
		t.Fatalf("wrong location accepted: %v", err)
	}
	sb[100] ^= 1
	var ce *ChecksumError
	if err := v.Check(sb, 0); !errors.As(err, &ce) || !errors.Is(err, ErrCorruption) {
		t.Fatalf("corrupt block accepted: %v", err)
	}
	if ce.Want == ce.Got {
		t.Fatalf("checksum error with equal values: %+v", ce)
	}
}

func newManager(t *testing.T, blocks uint64, cache int64) (*Manager, *MemDevice) {
	dev := NewMemDevice(int64(blocks) * BlockSize)
	return New(dev, blocks, Options{CacheBytes: cache}), dev
}

func TestWriteThenReadBackThroughDevice(t *testing.T) {
	m, dev := newManager(t, 64, 0)
	for b := uint64(1); b < 10; b++ {
		blk, err := m.WriteLockZero(b, testValidator)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint64(blk.Data()[16:], b*7)
		m.Unlock(blk)
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	m2 := New(dev, 64, Options{})
	for b := uint64(1); b < 10; b++ {
		blk, err := m2.ReadLock(b, testValidator)
		if err != nil {
			t.Fatalf("block %d: %v", b, err)
		}
		if got := binary.LittleEndian.Uint64(blk.Data()[16:]); got != b*7 {
			t.Fatalf("block %d holds %d", b, got)
		}
		m2.Unlock(blk)
	}
	if n := m2.LockedBlocks(); n != 0 {
		t.Fatalf("%d blocks still locked", n)
	}
}

func TestLockConflictsAreErrorsNotDeadlocks(t *testing.T) {
	m, _ := newManager(t, 8, 0)
	w, err := m.WriteLockZero(3, testValidator)
	if err != nil {
		t.Fatal(err)
	}
	var le *LockError
	if _, err := m.ReadLock(3, testValidator); !errors.As(err, &le) {
		t.Fatalf("read lock of a write-locked block: %v", err)
	}
	if _, err := m.WriteLock(3, testValidator); !errors.As(err, &le) {
		t.Fatalf("second write lock: %v", err)
	}
	m.Unlock(w)
	r1, err := m.ReadLock(3, testValidator)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := m.ReadLock(3, testValidator)
	if err != nil {
		t.Fatalf("readers must share: %v", err)
	}
	if _, err := m.WriteLock(3, testValidator); !errors.As(err, &le) {
		t.Fatalf("write lock while read locked: %v", err)
	}
	m.Unlock(r1)
	m.Unlock(r2)
	if _, err := m.ReadLock(8, testValidator); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("out of range: %v", err)
	}
}

func TestValidatorMismatch(t *testing.T) {
	m, _ := newManager(t, 8, 0)
	other := &StampedValidator{TypeName: "other", Xor: 1}
	w, _ := m.WriteLockZero(2, testValidator)
	m.Unlock(w)
	var vm *ValidatorMismatchError
	if _, err := m.ReadLock(2, other); !errors.As(err, &vm) {
		t.Fatalf("got %v", err)
	}
	r, err := m.ReadLock(2, NoValidator)
	if err != nil {
		t.Fatalf("raw reads must always work: %v", err)
	}
	m.Unlock(r)
}

func TestCorruptBlockOnDiskIsReported(t *testing.T) {
	m, dev := newManager(t, 8, 0)
	w, _ := m.WriteLockZero(5, testValidator)
	w.Data()[200] = 9
	m.Unlock(w)
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.WriteAt([]byte{1}, 5*BlockSize+300); err != nil {
		t.Fatal(err)
	}
	m2 := New(dev, 8, Options{})
	_, err := m2.ReadLock(5, testValidator)
	var ce *ChecksumError
	if !errors.As(err, &ce) || ce.Block != 5 || ce.Validator != "test" {
		t.Fatalf("got %v", err)
	}
}

func TestEvictionWritesBackDirtyBlocks(t *testing.T) {
	// 16 blocks of cache, 200 blocks written: most must go out early and
	// come back intact.
	m, _ := newManager(t, 256, 16*BlockSize)
	for b := uint64(1); b <= 200; b++ {
		w, err := m.WriteLockZero(b, testValidator)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint64(w.Data()[16:], b)
		m.Unlock(w)
	}
	st := m.Stats()
	if st.CachedBlocks > st.CapacityBlocks || st.Evictions == 0 {
		t.Fatalf("cache not bounded: %+v", st)
	}
	for b := uint64(1); b <= 200; b++ {
		r, err := m.ReadLock(b, testValidator)
		if err != nil {
			t.Fatal(err)
		}
		if got := binary.LittleEndian.Uint64(r.Data()[16:]); got != b {
			t.Fatalf("block %d holds %d", b, got)
		}
		m.Unlock(r)
	}
}

func TestSuperblockIsWrittenLastAfterASync(t *testing.T) {
	m, dev := newManager(t, 32, 0)
	for b := uint64(1); b < 20; b++ {
		w, _ := m.WriteLockZero(b, testValidator)
		m.Unlock(w)
	}
	sb, err := m.WriteLockZero(0, testValidator)
	if err != nil {
		t.Fatal(err)
	}
	// Cut power right after the data blocks: the superblock must not be
	// on the device, the others must all be durable.
	dev.CutPowerAfter(19) // blocks 1..19, however they are coalesced
	err = m.FlushAndUnlock(sb)
	if !errors.Is(err, ErrPowerCut) {
		t.Fatalf("got %v", err)
	}
	crashed := dev.CrashClone(1, nil)
	buf := make([]byte, BlockSize)
	crashed.ReadAt(buf, 0)
	if StoredChecksum(buf) != 0 {
		t.Fatal("superblock reached the device before the sync")
	}
	crashed.ReadAt(buf, 7*BlockSize)
	if err := testValidator.Check(buf, 7); err != nil {
		t.Fatal(err)
	}
}

func TestMemDeviceCrashKeepsOnlySyncedWrites(t *testing.T) {
	dev := NewMemDevice(4 * BlockSize)
	dev.WriteAt([]byte("durable"), 0)
	dev.Sync()
	dev.WriteAt([]byte("lost"), BlockSize)
	c := dev.CrashClone(0, rand.New(rand.NewPCG(1, 2)))
	buf := make([]byte, 7)
	c.ReadAt(buf, 0)
	if string(buf) != "durable" {
		t.Fatalf("synced write lost: %q", buf)
	}
	c.ReadAt(buf[:4], BlockSize)
	if string(buf[:4]) != "\x00\x00\x00\x00" {
		t.Fatalf("unsynced write survived a crash that keeps none: %q", buf[:4])
	}
}
