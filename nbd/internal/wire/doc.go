// Package wire holds the NBD protocol's constants and the encoders and
// decoders of its fixed-layout messages: option headers and option bodies of
// the handshake, compact and extended request headers, and the headers of
// option replies, simple replies, structured and extended reply chunks.
//
// It does no I/O. Decoders take byte slices of the exact size and return an
// error for anything malformed; they never panic on hostile input (fuzzed in
// fuzz_test.go). Encoders append to a caller's buffer so the hot path
// allocates nothing. Everything is big-endian, without padding.
//
// Constants that github.com/pojntfx/go-nbd/pkg/protocol already defines are
// taken from there; the rest (most of the protocol) are defined here from the
// NBD protocol document (doc/proto.md and its extension-ext-header branch).
package wire
