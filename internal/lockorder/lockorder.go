// Package lockorder gives the engine's and the metadata format's locks a
// rank and, in builds with -tags invariants, checks on every acquisition
// that a goroutine takes them in rank order, as the kernel's lockdep does
// for lock classes. The order is the one thinpool's package doc writes
// down; a lock taken out of order panics with the locks the goroutine
// already held. Without the tag the types are plain sync mutexes.
//
// A TryLock may be taken in any order (it never waits, so it cannot close
// a cycle); the lock it took still counts as held. Locks are tracked per
// goroutine, so a lock must be released by the goroutine that took it.
package lockorder

import (
	"sync"

	"github.com/thind-storage/thind/internal/invariants"
)

// Rank places a lock in the order: a goroutine holding a lock may only
// take locks of a higher rank. Rank types are empty structs, so that a
// Mutex[R] is usable as its zero value.
type Rank interface {
	Rank() (level int, name string)
}

// The ranks of thind's ordered locks, outermost first. thinpool's package
// doc explains each.
type (
	PoolHold   struct{} // thinpool.Pool.hold: background commits held
	ThinWrites struct{} // thinpool.Thin.writes: a thin's writes quiesced
	Cell       struct{} // a bio-prison cell of a virtual block or range
	Txn        struct{} // thinpool.Pool.txn: the transaction lock
	Thins      struct{} // thinpool.Pool.thinsMu: the open thins
	Metadata   struct{} // thinmeta.Pool.mu: the metadata lock
	Leaf       struct{} // a short lock that never has another taken under it
)

func (PoolHold) Rank() (int, string)   { return 10, "thinpool.Pool.hold" }
func (ThinWrites) Rank() (int, string) { return 20, "thinpool.Thin.writes" }
func (Cell) Rank() (int, string)       { return 30, "prison cell" }
func (Txn) Rank() (int, string)        { return 40, "thinpool.Pool.txn" }
func (Thins) Rank() (int, string)      { return 45, "thinpool.Pool.thinsMu" }
func (Metadata) Rank() (int, string)   { return 50, "thinmeta.Pool.mu" }
func (Leaf) Rank() (int, string)       { return 90, "leaf lock" }

// Mutex is a sync.Mutex of rank R.
type Mutex[R Rank] struct{ mu sync.Mutex }

func (m *Mutex[R]) Lock() {
	if invariants.Enabled {
		acquire[R](false)
	}
	m.mu.Lock()
}

func (m *Mutex[R]) TryLock() bool {
	ok := m.mu.TryLock()
	if invariants.Enabled && ok {
		acquire[R](true)
	}
	return ok
}

func (m *Mutex[R]) Unlock() {
	if invariants.Enabled {
		release[R]()
	}
	m.mu.Unlock()
}

// RWMutex is a sync.RWMutex of rank R; both sides have the rank.
type RWMutex[R Rank] struct{ mu sync.RWMutex }

func (m *RWMutex[R]) Lock() {
	if invariants.Enabled {
		acquire[R](false)
	}
	m.mu.Lock()
}

func (m *RWMutex[R]) Unlock() {
	if invariants.Enabled {
		release[R]()
	}
	m.mu.Unlock()
}

func (m *RWMutex[R]) RLock() {
	if invariants.Enabled {
		acquire[R](false)
	}
	m.mu.RLock()
}

func (m *RWMutex[R]) RUnlock() {
	if invariants.Enabled {
		release[R]()
	}
	m.mu.RUnlock()
}

// Acquire and Release record a lock of rank R that is not one of these
// types (a prison cell), around its own acquisition and release.
func Acquire[R Rank]() {
	if invariants.Enabled {
		acquire[R](false)
	}
}

func Release[R Rank]() {
	if invariants.Enabled {
		release[R]()
	}
}
