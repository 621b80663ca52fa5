package bioprison

import "sync"

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
// The zero DeferredSet is empty and ready to use. It is safe for concurrent
// use.
type DeferredSet[W any] struct {
	mu    sync.Mutex
	ring  []generation[W] // len is a power of two once used
	head  int             // ring index of the oldest generation
	n     int             // generations alive, at least 1 once used
	first uint64          // number of the oldest generation; starts at 1
}

type generation[W any] struct {
	count int // I/Os of this generation still in flight
	work  []W // work waiting for this and all older generations
}

// DeferredEntry names the generation an I/O was counted in; pass it back to
// Dec when the I/O completes. The zero DeferredEntry is not an entry.
type DeferredEntry struct {
	gen uint64
}

// at returns the generation i places after the oldest.
func (ds *DeferredSet[W]) at(i int) *generation[W] {
	return &ds.ring[(ds.head+i)&(len(ds.ring)-1)]
}

func (ds *DeferredSet[W]) init() {
	if ds.n == 0 {
		ds.ring = make([]generation[W], 4)
		ds.n = 1
		ds.first = 1
	}
}

// Inc counts an I/O starting now and returns the entry to Dec when it ends
// (the kernel's dm_deferred_entry_inc).
func (ds *DeferredSet[W]) Inc() DeferredEntry {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.init()
	ds.at(ds.n-1).count++
	return DeferredEntry{ds.first + uint64(ds.n-1)}
}

// Dec records that the I/O counted by e has completed and appends to dst the
// work that no longer waits for anything, oldest first (the kernel's
// dm_deferred_entry_dec). The caller runs or queues that work.
func (ds *DeferredSet[W]) Dec(e DeferredEntry, dst []W) []W {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if e.gen < ds.first || e.gen-ds.first >= uint64(ds.n) {
		panic("bioprison: Dec of an entry not in the deferred set")
	}
	g := ds.at(int(e.gen - ds.first))
	if g.count == 0 {
		panic("bioprison: Dec of an entry with no I/O left")
	}
	g.count--
	// Retire drained generations from the oldest up. The newest is never
	// retired: it has no work (AddWork always moves past it) and new I/O
	// goes there.
	for ds.n > 1 {
		g := ds.at(0)
		if g.count != 0 {
			break
		}
		dst = append(dst, g.work...)
		clear(g.work)
		if cap(g.work) > maxKeptWaiters {
			g.work = nil
		} else {
			g.work = g.work[:0]
		}
		ds.head = (ds.head + 1) & (len(ds.ring) - 1)
		ds.n--
		ds.first++
	}
	return dst
}

// AddWork queues w behind every I/O counted so far and returns true, or
// returns false if no I/O is in flight, in which case w was not queued and
// the caller runs it now (the kernel's dm_deferred_set_add_work).
func (ds *DeferredSet[W]) AddWork(w W) bool {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.init()
	newest := ds.at(ds.n - 1)
	switch {
	case newest.count == 0 && ds.n == 1:
		return false
	case newest.count == 0:
		// No I/O since the newest generation opened, so w waits for exactly
		// what the previous one's work waits for: join it rather than open
		// a generation per piece of work.
		prev := ds.at(ds.n - 2)
		prev.work = append(prev.work, w)
	default:
		newest.work = append(newest.work, w)
		ds.push()
	}
	return true
}

// push opens a new, empty newest generation, growing the ring if full.
func (ds *DeferredSet[W]) push() {
	if ds.n == len(ds.ring) {
		ring := make([]generation[W], 2*len(ds.ring))
		for i := 0; i < ds.n; i++ {
			ring[i] = *ds.at(i)
		}
		ds.ring = ring
		ds.head = 0
	}
	ds.n++
	g := ds.at(ds.n - 1) // a retired slot: count 0, work cleared
	g.count = 0
	g.work = g.work[:0]
}
