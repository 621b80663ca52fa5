// Package nbd is thind's Network Block Device server: the fixed-newstyle
// handshake and the transmission phase, serving any Backend found through
// an ExportLookup. It never imports the thin-pool engine; the daemon adapts
// a thin device to Backend.
//
// # Handshake
//
// The server greets with FIXED_NEWSTYLE|NO_ZEROES and answers EXPORT_NAME,
// ABORT, LIST, INFO, GO, STRUCTURED_REPLY, LIST_META_CONTEXT and
// SET_META_CONTEXT (base:allocation, and qemu:dirty-bitmap:NAME for a
// backend that implements DirtyBitmaps), EXTENDED_HEADERS and STARTTLS
// (crypto/tls, TLS 1.3, optional client certificates; see TLSMode). Other
// options get NBD_REP_ERR_UNSUP. INFO and GO always report the export's
// size and flags, canonical name, description and block sizes (minimum 1,
// preferred 4096, maximum payload 32 MiB). Option data is capped at 1 MiB
// and the number of options per connection at Options.MaxOptions; beyond
// either the connection is closed.
//
// The empty export name is the default export: ExportLookup decides what
// it is (MapExports maps it to DefaultExportName, "default"). go-nbd's
// client sends "default" when given no name, so with that naming both
// reach the same export without aliasing in the server.
//
// go-nbd's client (v0.3.2) is tolerated: it sends client flags 0, which is
// accepted for every option, and NBD_OPT_GO with length 0 followed by the
// body anyway, which the server reads from the stream (see
// readGoNBDInfoBody).
//
// # Transmission
//
// Requests on one connection run concurrently: a reader parses and
// validates them, a fixed pool of workers calls the backend, one writer
// sends complete replies in completion order (see transmission.go). The
// in-flight requests (Options.MaxInFlight) and their payload bytes are
// capped; when either is spent the reader stops reading the socket.
// Payload buffers come from bounded size-class free lists, so 4 KiB reads
// and writes allocate nothing in steady state, and the memory of a burst
// is given back once it is over (bufpool.go).
//
// # Resource limits
//
// What clients can make the server hold is bounded server-wide:
// connections (Options.MaxConnections; beyond it a new connection is
// closed at once), handshakes in progress (Options.MaxHandshakes; beyond
// it the oldest handshake of the busiest peer is evicted, see
// admission.go), and buffered payload bytes (Options.BufferBudget, with a
// per-connection cap and a guaranteed share per connection, see
// budget.go). A client that takes no reply bytes for Options.ReplyTimeout
// is dropped. An ExportLookup may refuse an export with ErrExportBusy (a
// per-export connection limit). Each hit is counted in Stats.LimitHits
// and logged at most once a second per kind.
//
// Replies are simple, structured (STRUCTURED_REPLY) or extended
// (EXTENDED_HEADERS) as negotiated. BLOCK_STATUS answers with one status
// chunk per selected meta context, in context id order. Structured READs answer ranges the
// backend reports as zero with OFFSET_HOLE chunks. Transmission flags are
// advertised from the backend's Capabilities and the negotiation: DF only
// with chunked replies, CAN_MULTI_CONN only when the backend declares the
// cross-connection flush guarantee, write-side flags only on writable
// exports.
//
// # Size changes
//
// A backend may grow while it is served (Backend.Size). The protocol has
// no way to tell a connected client: the experimental RESIZE extension
// (NBD_CMD_RESIZE, NBD_FLAG_SEND_RESIZE) is a client's request to resize,
// not a notice from the server, and it is not offered. So a connection
// keeps the size its handshake reported as far as clients are concerned,
// while requests are checked against the live size: a client told out of
// band, as the kernel's client is by the NBD_SET_SIZE ioctl, can address
// the new space on the connection it has, and one that is not never sends
// past the old end (the spec forbids it) and sees no BLOCK_STATUS extent
// past it. New connections are told the new size. nbdkit, by contrast,
// keeps each connection to the size it read at the handshake, and
// qemu-nbd does not let its export's image be resized while exported.
//
// Request errors are answered with the protocol's error values, mapped
// from backend errors in one place (errors.go); only protocol violations
// that break framing (bad magic, a payload above 64 MiB, a truncated
// message) close the connection.
//
// # Shutdown
//
// Serve runs until its context is done, then stops accepting, answers
// further options with NBD_REP_ERR_SHUTDOWN, stops reading requests,
// lets in-flight requests finish and closes; a client that takes no
// reply bytes (or sends no option) for 2 s meanwhile is dropped. After
// Options.ShutdownTimeout the rest are closed and backend contexts
// cancelled.
//
// # Observability
//
// Server.Stats returns plain counters (connections, handshake failures by
// reason, per-export per-command requests, errors, bytes and latency
// histograms) for the daemon's metrics package.
package nbd
