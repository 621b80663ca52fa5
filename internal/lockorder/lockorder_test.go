package lockorder

import (
	"strings"
	"testing"

	"github.com/thind-storage/thind/internal/invariants"
)

func mustPanic(t *testing.T, want string, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one saying %q", want)
		}
		if !strings.Contains(r.(string), want) {
			t.Fatalf("panic %q, want one saying %q", r, want)
		}
	}()
	fn()
}

func TestOrderIsChecked(t *testing.T) {
	var hold Mutex[PoolHold]
	var txn RWMutex[Txn]
	var md RWMutex[Metadata]
	if !invariants.Enabled {
		// Plain mutexes: nothing is tracked, nothing is refused.
		md.Lock()
		txn.Lock()
		if got := Held(); got != "nothing" {
			t.Fatalf("held: %s", got)
		}
		txn.Unlock()
		md.Unlock()
		return
	}

	t.Run("in order", func(t *testing.T) {
		hold.Lock()
		txn.RLock()
		md.Lock()
		if got := Held(); got != "thinpool.Pool.hold (10), thinpool.Pool.txn (40), thinmeta.Pool.mu (50)" {
			t.Fatalf("held: %s", got)
		}
		md.Unlock()
		txn.RUnlock()
		hold.Unlock()
		if got := Held(); got != "nothing" {
			t.Fatalf("held after unlocking: %s", got)
		}
	})
	t.Run("out of order", func(t *testing.T) {
		md.RLock()
		defer md.RUnlock()
		mustPanic(t, "thinpool.Pool.txn (rank 40) taken while holding thinmeta.Pool.mu (rank 50)", txn.RLock)
	})
	t.Run("the same rank twice", func(t *testing.T) {
		txn.RLock()
		defer txn.RUnlock()
		mustPanic(t, "thinpool.Pool.txn (rank 40) taken while holding thinpool.Pool.txn (rank 40)", txn.RLock)
	})
	t.Run("a try lock in any order", func(t *testing.T) {
		txn.RLock()
		if !hold.TryLock() {
			t.Fatal("TryLock of a free mutex failed")
		}
		hold.Unlock()
		txn.RUnlock()
	})
	t.Run("released by another goroutine", func(t *testing.T) {
		hold.Lock()
		done := make(chan any)
		go func() {
			defer func() { done <- recover() }()
			hold.Unlock()
		}()
		r := <-done
		if r == nil || !strings.Contains(r.(string), "released by a goroutine that does not hold it") {
			t.Fatalf("panic %v", r)
		}
		hold.Unlock()
	})
}
