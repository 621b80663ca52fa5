// Package discard holds the range arithmetic of dm-thin discards: whole
// blocks versus partial edges, chunking at the prison's range limit, and the
// merging of freed data blocks into passdown extents. It does no I/O.
package discard
