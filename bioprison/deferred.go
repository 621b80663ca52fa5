package bioprison

import (
	"sync"
	"sync/atomic"
)

// DeferredSet holds work back until every I/O that started before the work
// was queued has completed (the kernel's dm_deferred_set). dm-thin keeps two:
// shared_read_ds, so that a break-sharing copy remaps a block only after the
// reads still using the old block are done, and all_io_ds, so that a
// discard unmaps blocks only after the writes in flight to them are done.
//
// I/O is counted in generations. Inc adds an I/O to the newest generation;
// AddWork queues work on the newest generation that has I/O and opens a new
// one, so later I/O never delays it. A generation retires when it and every
// older one have no I/O left, and its work is handed back by the Dec that
// retired it. Unlike the kernel's fixed ring of 64 entries, which lets late
// I/O join a full ring's last entry and so delay work queued before it, the
// generations here grow as needed (each but the newest holds some work, so
// they cost no more than the work itself), and work runs exactly when the
// I/O before it has drained.
//
// Inc and Dec are the per-I/O path, so they take no lock: they count on the
// newest generation with atomics, and only the Dec that drains a sealed
// generation (one that AddWork has moved past) takes the lock to retire it.
//
// The zero DeferredSet is empty and ready to use. It is safe for concurrent
// use.
type DeferredSet[W any] struct {
	newest atomic.Pointer[generation[W]]

	mu     sync.Mutex
	gens   []*generation[W] // alive, oldest first; the last is newest
	nextID uint64           // number of the last generation opened; the first is 1
}

// genCount is the lock-free part of a generation, which entries point to.
type genCount struct {
	count atomic.Int64 // I/Os of this generation still in flight
	// sealed is set, under the set's lock, once the generation is no
	// longer the newest: from then on the Dec that drains it retires it.
	sealed atomic.Bool
	id     uint64 // generations are numbered from 1, for tests and debugging
}

type generation[W any] struct {
	genCount
	// Under the set's lock:
	work    []W  // work waiting for this and all older generations
	retired bool // its work was handed back; an Inc that lands here backs out
}

// DeferredEntry names the generation an I/O was counted in; pass it back to
// Dec when the I/O completes. The zero DeferredEntry is not an entry.
type DeferredEntry struct {
	g *genCount
}

// Test hooks, nil outside tests: they run another operation inside a
// window of the lock-free protocol. Atomic, so that setting one races
// nothing.
var (
	testHookIncLoaded      atomic.Pointer[func()] // Inc has read the newest generation, not counted on it yet
	testHookAddWorkSealing atomic.Pointer[func()] // AddWork has seen I/O in the newest, not sealed it yet
)

// runHook runs the hook h holds, if any.
func runHook(h *atomic.Pointer[func()]) {
	if fn := h.Load(); fn != nil {
		(*fn)()
	}
}

// init opens the first generation; mu is held.
func (ds *DeferredSet[W]) init() {
	if len(ds.gens) == 0 {
		ds.open()
	}
}

// open makes a new newest generation; mu is held. Generations are never
// reused: an Inc that read the newest pointer just before it changed may
// still count on the old generation.
func (ds *DeferredSet[W]) open() {
	ds.nextID++
	g := &generation[W]{genCount: genCount{id: ds.nextID}}
	ds.gens = append(ds.gens, g)
	ds.newest.Store(g)
}

// Inc counts an I/O starting now and returns the entry to Dec when it ends
// (the kernel's dm_deferred_entry_inc).
func (ds *DeferredSet[W]) Inc() DeferredEntry {
	for {
		g := ds.newest.Load()
		if g == nil {
			ds.mu.Lock()
			ds.init()
			ds.mu.Unlock()
			continue
		}
		runHook(&testHookIncLoaded)
		g.count.Add(1)
		// AddWork seals a generation and then reads its count; this
		// counts and then reads the seal. One of the two sees the other:
		// either the work waits for this I/O, or this sees the seal and
		// settles under the lock.
		if !g.sealed.Load() {
			return DeferredEntry{&g.genCount}
		}
		ds.mu.Lock()
		if !g.retired {
			// Still alive, and now kept alive by this count: the work
			// queued on it waits for this concurrent I/O too, which is
			// allowed, and every count stays accounted for.
			ds.mu.Unlock()
			return DeferredEntry{&g.genCount}
		}
		// Retired before this count landed: nobody looks at its count
		// again. Count on the newest instead.
		ds.mu.Unlock()
	}
}

// Dec records that the I/O counted by e has completed and appends to dst the
// work that no longer waits for anything, oldest first (the kernel's
// dm_deferred_entry_dec). The caller runs or queues that work.
func (ds *DeferredSet[W]) Dec(e DeferredEntry, dst []W) []W {
	if e.g == nil {
		panic("bioprison: Dec of the zero DeferredEntry")
	}
	n := e.g.count.Add(-1)
	if n < 0 {
		panic("bioprison: Dec of an entry with no I/O left")
	}
	if n == 0 && e.g.sealed.Load() {
		ds.mu.Lock()
		dst = ds.retire(dst)
		ds.mu.Unlock()
	}
	return dst
}

// retire retires drained generations from the oldest up and appends their
// work to dst; mu is held. The newest is never retired: it has no work
// (AddWork always moves past it) and new I/O goes there. A sealed
// generation is retired by whoever takes its count to zero, or, if that
// happened before the seal, by the AddWork that sealed it or by the retire
// of an older generation, so its work is handed back exactly once.
func (ds *DeferredSet[W]) retire(dst []W) []W {
	for len(ds.gens) > 1 && ds.gens[0].count.Load() == 0 {
		dst = append(dst, ds.popOldest()...)
	}
	return dst
}

// popOldest removes the oldest generation and returns its work; mu is held.
func (ds *DeferredSet[W]) popOldest() []W {
	g := ds.gens[0]
	g.retired = true
	ds.gens[0] = nil
	ds.gens = ds.gens[1:]
	w := g.work
	g.work = nil
	return w
}

// AddWork queues w behind every I/O counted so far and returns true, or
// returns false if no I/O is in flight, in which case w was not queued and
// the caller runs it now (the kernel's dm_deferred_set_add_work).
func (ds *DeferredSet[W]) AddWork(w W) bool {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.init()
	newest := ds.gens[len(ds.gens)-1]
	if newest.count.Load() == 0 {
		if len(ds.gens) == 1 {
			return false
		}
		// No I/O since the newest generation opened, so w waits for exactly
		// what the previous one's work waits for: join it rather than open
		// a generation per piece of work.
		prev := ds.gens[len(ds.gens)-2]
		prev.work = append(prev.work, w)
		return true
	}
	runHook(&testHookAddWorkSealing)
	newest.work = append(newest.work, w)
	ds.open()
	newest.sealed.Store(true)
	// Its I/O may all have ended before the seal, each Dec seeing it
	// unsealed: then retiring it is up to this call, if nothing older
	// holds it back (an older one's retire will go on to it otherwise).
	if newest.count.Load() == 0 && ds.gens[0] == newest {
		ds.popOldest() // its work is w alone: joins come after the seal
		return false
	}
	return true
}
