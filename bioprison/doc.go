// Package bioprison implements dm-bio-prison: cells keyed by a device and a
// block range that hold back requests touching blocks that are being
// provisioned, shared or discarded, and deferred sets that hold back work
// until the I/O in flight before it has completed.
//
// # Cells
//
// A Key names a block range of one device in the virtual (thin) or data
// (pool) address space. Keys collide when their ranges overlap. The first
// request to Detain a key becomes the holder of a new cell; requests whose
// keys collide with a live cell wait in it. Waiting costs a slice slot, not
// a goroutine: the prison hands the inmates back when the holder releases
// the cell, and the caller re-queues them (Release, ReleaseNoHolder,
// VisitRelease, Error), or passes the cell to the next one
// (PromoteOrRelease). Inmates are opaque values of the type parameter T,
// typically a pointer to the engine's request.
//
// A key covers at most MaxRange blocks and never crosses a MaxRange-aligned
// boundary, as in the kernel. That is what allows the prison to shard its
// lock by window: overlapping keys always meet in the same region. Cells are
// recycled per region, so a detain allocates nothing once the prison has
// warmed up.
//
// Locker offers the same cells to callers that block one goroutine per
// request, as the engine does: Lock(ctx, key) returns the key held, to pass
// to Unlock, or ctx's error, and a Lock whose context ends leaves no waiter
// behind.
//
// # Deferred sets
//
// DeferredSet orders work after I/O: Inc when an I/O starts, Dec when it
// ends, AddWork for work that must wait for every I/O started before it.
// dm-thin uses one for reads of shared blocks (a break-sharing copy must not
// remap and free the old block under them) and one for all I/O (a discard
// must not unmap blocks with writes in flight).
//
// The package knows nothing of pools or requests; it follows
// drivers/md/dm-bio-prison-v1.[ch] and the users in drivers/md/dm-thin.c.
package bioprison
