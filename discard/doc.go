// Package discard holds the range arithmetic of dm-thin discards: whole
// blocks versus partial edges, chunking at the prison's range limit, and the
// merging of freed data blocks into passdown extents. It does no I/O.
//
// A discard (TRIM) of a thin device goes through three steps, as in the
// kernel's process_discard_bio and break_up_discard_bio:
//
//  1. Geometry.Split cuts the byte range into the whole blocks it covers and
//     the partial blocks at its edges. Only whole blocks are unmapped; a
//     discard is advisory, so the edges are ignored. (Geometry.WriteZeroes
//     plans the same cut for WRITE_ZEROES, where the edges are zeroed.)
//  2. BlockRange.Chunks cuts the whole blocks into chunks of at most
//     MaxChunk blocks that never cross a MaxChunk-aligned boundary, so each
//     chunk can be locked with one prison range cell. The data ranges a
//     chunk maps to are chunked again the same way.
//  3. After unmapping, the data blocks whose reference count fell to zero
//     go into an ExtentBuilder, which merges them into extents to pass down
//     to the backing store (a hole punched in the data file).
//
// Block sizes are the pool's, checked by thinmeta.CheckDataBlockSize (any
// multiple of 64 KiB up to 1 GiB); the arithmetic does not need them to be
// powers of two, nor multiples of anything. Errors are typed: *SizeError for bad
// sizes, *RangeError for requests past the device or overflowing 64 bits.
package discard
