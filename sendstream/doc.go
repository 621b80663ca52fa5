// Package sendstream is the wire format of `thind volume send` and
// `thind volume receive` (docs/send-stream.md): a versioned header naming
// what the stream holds, data and zero records in offset order, and an
// end record with the counts and a checksum over the whole stream. Every
// record carries its own crc32c (Castagnoli), so a receiver applies a
// record only once it is known good. The package does no I/O of its own
// beyond the io.Reader and io.Writer it is given; it bounds every length
// it decodes, so a hostile stream cannot make it allocate without bound.
package sendstream
