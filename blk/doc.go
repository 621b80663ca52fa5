// Package blk is a blk-mq style multi-queue dispatcher in front of backing
// files and block devices.
//
// It follows the Linux block layer's request path (block/blk-mq.c) because
// that design has already solved the problems thind has: many submitters,
// bounded requests in flight, cheap batching, and a fast path that costs
// almost nothing over a plain system call.
//
//	submitter ─► software queue ─► hardware queue (tag set) ─► Backend
//	              (per submitter)    (workers, dispatch list)
//
// A submitter is mapped to a software queue, and each software queue to
// one hardware queue. Go has no CPU id to index software queues by, so the
// synchronous calls hash the address of the caller's buffer, Submit hashes
// the address of the Request, and a Plug takes a queue round-robin when it
// is made: stable for a submitter that reuses its buffers, free of shared
// counters, and spread over unrelated submitters. Every request
// first takes a tag from its hardware queue's tag set, a scalable bitmap
// after lib/sbitmap.c; when the set is exhausted the submitter blocks, which
// is the backpressure that bounds memory and in-flight I/O, and the wait
// honours its context. The tag indexes a preallocated command, so steady
// state submission does not allocate.
//
// Copy moves a range within the backing store without passing it through
// memory where the backend can (CopyBackend: a reflink clone with
// FICLONERANGE, else copy_file_range), and through a dispatcher buffer
// where it cannot; that choice is made in one place (copy.go).
//
// Synchronous calls (Read, Write, Discard, WriteZeroes, Copy, Flush) issue
// directly in the caller's goroutine when the hardware queue has no
// backlog, like blk_mq_try_issue_directly: the caller would block anyway,
// so handing the request to another goroutine would only add two context
// switches. Asynchronous Submit and plugged batches go through the software
// queues to per hardware queue worker goroutines.
//
// So a caller with one request to wait for uses the synchronous calls,
// and a caller with several that it waits for together submits them
// through a Plug and waits for their End calls, like a bio chain: they
// merge where they meet and run in parallel on the workers. thinpool does
// both: a lone piece (a 4 KiB read or write, a block written whole, a
// new block's copy or zeroing) is issued directly, and a read or write
// spanning data blocks goes through a plug per request.
//
// A Plug batches one submitter's requests; when it is finished they are
// sorted by operation and offset, and contiguous requests of the same
// operation merge into one backend call (preadv/pwritev2 for data),
// bounded like max_sectors and max_segments.
//
// Stats returns plain counters per hardware queue (tags in use, backlog,
// tag sleeps, backend calls, direct and queued requests, merges, and per
// operation requests, bytes, errors and a latency histogram) for the
// metrics package to export.
//
// The package knows requests, not pools: offsets and lengths are bytes on
// the backing store. Requests in flight at the same time are unordered, as
// in the kernel; a caller that needs ordering waits for completion, and a
// caller that needs durability uses FUA or Flush after completion.
package blk
