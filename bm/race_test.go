package bm

import (
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// TestWriteLockDoesNotEraseAFastPathReader puts a lock-free reader exactly
// in the window between a writer's check that the block is free and its
// claim of the block: the writer must then see the reader and fail with a
// LockError, not take the block over and leave the reader's lock counted
// nowhere.
func TestWriteLockDoesNotEraseAFastPathReader(t *testing.T) {
	m, _ := newManager(t, 8, 0)
	w, err := m.WriteLockZero(3, testValidator)
	if err != nil {
		t.Fatal(err)
	}
	m.Unlock(w) // block 3 is cached and validated: readers take the fast path

	var reader Block
	var readErr error
	m.beforeWriteClaim = func(b uint64) {
		m.beforeWriteClaim = nil
		// The fast path takes no mutex, so it may run while the writer
		// holds the shard's.
		reader, readErr = m.ReadLock(b, testValidator)
	}
	writer, err := m.WriteLock(3, testValidator)
	if readErr != nil {
		t.Fatalf("the reader in the window failed: %v", readErr)
	}
	var le *LockError
	if err == nil {
		m.Unlock(writer)
		m.Unlock(reader)
		t.Fatalf("the writer took block 3 while a reader held it; lock state afterwards %d (0 is free)", m.shardOf(3).get(3).state.Load())
	}
	if !errors.As(err, &le) || le.Held != "read" {
		t.Fatalf("the writer failed with %v, want a LockError naming the read lock", err)
	}
	m.Unlock(reader)
	if n := m.LockedBlocks(); n != 0 {
		t.Fatalf("%d blocks locked after every lock was released", n)
	}
	w, err = m.WriteLock(3, testValidator)
	if err != nil {
		t.Fatalf("block 3 cannot be write-locked once free: %v", err)
	}
	m.Unlock(w)
}

// TestConcurrentLocksKeepTheirStates runs lock-free readers against
// writers on a few hot blocks. Each side records what it holds; a writer
// must never hold a block that a reader or another writer holds, and every
// lock must be gone at the end. THIND_BM_STRESS=N runs N rounds instead of
// the default.
func TestConcurrentLocksKeepTheirStates(t *testing.T) {
	rounds := 20000
	if n, _ := strconv.Atoi(os.Getenv("THIND_BM_STRESS")); n > 0 {
		rounds = n
	}
	const blocks = 4
	m, _ := newManager(t, 16, 0)
	for b := uint64(1); b <= blocks; b++ {
		w, err := m.WriteLockZero(b, testValidator)
		if err != nil {
			t.Fatal(err)
		}
		m.Unlock(w)
	}
	var readers, writers [blocks + 1]atomic.Int64
	var bad atomic.Value
	fail := func(msg string) { bad.CompareAndSwap(nil, msg) }
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range rounds {
				b := uint64(1 + (i+g)%blocks)
				r, err := m.ReadLock(b, testValidator)
				if err != nil {
					continue // a writer holds it
				}
				readers[b].Add(1)
				if writers[b].Load() != 0 {
					fail("a reader and a writer held block " + strconv.Itoa(int(b)) + " at once")
				}
				readers[b].Add(-1)
				m.Unlock(r)
			}
		})
	}
	for g := range 2 {
		wg.Go(func() {
			for i := range rounds {
				b := uint64(1 + (i*3+g)%blocks)
				w, err := m.WriteLock(b, testValidator)
				if err != nil {
					continue // readers or the other writer hold it
				}
				if writers[b].Add(1) != 1 {
					fail("two writers held block " + strconv.Itoa(int(b)) + " at once")
				}
				if readers[b].Load() != 0 {
					fail("a writer took block " + strconv.Itoa(int(b)) + " while a reader held it")
				}
				w.Data()[100]++
				writers[b].Add(-1)
				m.Unlock(w)
			}
		})
	}
	wg.Wait()
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
	if n := m.LockedBlocks(); n != 0 {
		t.Fatalf("%d blocks still locked after every lock was released", n)
	}
	for b := uint64(1); b <= blocks; b++ {
		w, err := m.WriteLock(b, testValidator)
		if err != nil {
			t.Fatalf("block %d: %v after every lock was released", b, err)
		}
		m.Unlock(w)
	}
}

// TestConcurrentLocksWithEviction runs readers, writers and flushes over
// far more blocks than the cache holds, so blocks are evicted (dirty ones
// written back) and read again while others are locked. Every read must
// see its own block's bytes, and at the end every block must hold exactly
// the increments its writers made. Flushes exclude the lock calls, as
// the package doc requires (thinmeta's lock does it in service).
func TestConcurrentLocksWithEviction(t *testing.T) {
	const blocks = 200
	rounds := 4000
	if n, _ := strconv.Atoi(os.Getenv("THIND_BM_STRESS")); n > 0 {
		rounds = n
	}
	m, _ := newManager(t, blocks+1, minShardBlocks*BlockSize)
	for b := uint64(1); b <= blocks; b++ {
		w, err := m.WriteLockZero(b, testValidator)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint64(w.Data()[24:], b)
		m.Unlock(w)
	}
	var increments [blocks + 1]atomic.Uint64
	var bad atomic.Value
	fail := func(msg string) { bad.CompareAndSwap(nil, msg) }
	var wg sync.WaitGroup
	var flushing sync.RWMutex
	for g := range 3 {
		wg.Go(func() {
			for i := range rounds {
				b := uint64(1 + (i*7+g*31)%blocks)
				flushing.RLock()
				r, err := m.ReadLock(b, testValidator)
				if err != nil {
					var le *LockError
					if !errors.As(err, &le) {
						fail("read of block " + strconv.Itoa(int(b)) + ": " + err.Error())
					}
					flushing.RUnlock()
					continue // a writer holds it
				}
				if got := binary.LittleEndian.Uint64(r.Data()[24:]); got != b {
					fail("block " + strconv.Itoa(int(b)) + " read the bytes of block " + strconv.Itoa(int(got)))
				}
				m.Unlock(r)
				flushing.RUnlock()
			}
		})
	}
	for g := range 2 {
		wg.Go(func() {
			for i := range rounds {
				b := uint64(1 + (i*13+g*101)%blocks)
				flushing.RLock()
				w, err := m.WriteLock(b, testValidator)
				if err != nil {
					var le *LockError
					if !errors.As(err, &le) {
						fail("write of block " + strconv.Itoa(int(b)) + ": " + err.Error())
					}
					flushing.RUnlock()
					continue
				}
				n := binary.LittleEndian.Uint64(w.Data()[16:])
				binary.LittleEndian.PutUint64(w.Data()[16:], n+1)
				increments[b].Add(1)
				m.Unlock(w)
				flushing.RUnlock()
			}
		})
	}
	wg.Go(func() {
		for range rounds / 100 {
			flushing.Lock()
			if err := m.Flush(); err != nil {
				fail("flush: " + err.Error())
			}
			flushing.Unlock()
		}
	})
	wg.Wait()
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
	if n := m.LockedBlocks(); n != 0 {
		t.Fatalf("%d blocks still locked after every lock was released", n)
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	st := m.Stats()
	if st.Evictions == 0 || st.Misses == 0 {
		t.Fatalf("no eviction happened (%+v): the test did not test it", st)
	}
	m.Forget()
	var total uint64
	for b := uint64(1); b <= blocks; b++ {
		r, err := m.ReadLock(b, testValidator)
		if err != nil {
			t.Fatalf("block %d after the run: %v", b, err)
		}
		got, want := binary.LittleEndian.Uint64(r.Data()[16:]), increments[b].Load()
		m.Unlock(r)
		if got != want {
			t.Errorf("block %d holds %d increments, its writers made %d", b, got, want)
		}
		total += want
	}
	if total == 0 {
		t.Fatal("no write succeeded")
	}
	t.Logf("%d increments, %d evictions, %d misses", total, st.Evictions, st.Misses)
}
