package nbd

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// Stats is a point-in-time snapshot of a Server's counters. Counters are
// cumulative since the server was created; the daemon's metrics package
// turns them into thind_nbd_* series.
type Stats struct {
	// ConnectionsOpen is the number of connections being served (in
	// handshake or transmission); ConnectionsTotal counts every accepted
	// connection.
	ConnectionsOpen  int64
	ConnectionsTotal uint64
	// HandshakeFailures counts connections that ended before transmission
	// for a reason other than a clean ABORT, by reason (see the
	// Failure* constants).
	HandshakeFailures map[string]uint64
	// Exports holds the transmission counters per canonical export name.
	Exports map[string]ExportStats
	// AccessDenied counts the exports refused to a client the lookup
	// denied (ErrAccessDenied).
	AccessDenied uint64
	// LimitHits counts the times a resource limit turned a client away
	// or held it back, by kind (the Limit* constants).
	LimitHits map[string]uint64
	// BufferedBytes is the payload bytes held now against
	// Options.BufferBudget.
	BufferedBytes int64
}

// Limit kinds, the keys of Stats.LimitHits.
const (
	LimitConnections = "connections"        // a connection closed at once (MaxConnections)
	LimitHandshakes  = "handshakes"         // a handshake evicted for a newer one (MaxHandshakes)
	LimitBuffers     = "buffer_budget"      // a reader waited for shared buffer bytes (BufferBudget)
	LimitReply       = "reply_timeout"      // a client dropped for not taking its replies (ReplyTimeout)
	LimitExport      = "export_connections" // an export refused with ErrExportBusy
	numLimits        = 5
)

var limitNames = [numLimits]string{LimitConnections, LimitHandshakes, LimitBuffers, LimitReply, LimitExport}

// Handshake failure reasons, the keys of Stats.HandshakeFailures.
const (
	FailureEOF            = "eof"              // client left mid-handshake (often a port probe)
	FailureClientFlags    = "client_flags"     // unknown client flag bits
	FailureBadMagic       = "bad_magic"        // option without IHAVEOPT
	FailureOptionTooLong  = "option_too_long"  // option data above the cap
	FailureTooManyOptions = "too_many_options" // option count above the cap
	FailureTLS            = "tls"              // TLS handshake failed
	FailureTLSRequired    = "tls_required"     // EXPORT_NAME without TLS where TLS is required
	FailureUnknownExport  = "unknown_export"   // EXPORT_NAME for an unknown export
	FailureProtocol       = "protocol"         // other protocol violations
	FailureTimeout        = "timeout"          // handshake took too long
	FailureIO             = "io"               // socket errors
	FailureShutdown       = "shutdown"         // server shut down mid-handshake
	FailurePeerRefused    = "peer_refused"     // Options.AcceptPeer turned the client away
	FailureAccessDenied   = "access_denied"    // EXPORT_NAME for an export the client may not open
	FailureEvicted        = "evicted"          // its slot went to a newer handshake (Options.MaxHandshakes)
	FailureExportBusy     = "export_busy"      // EXPORT_NAME for an export at its connection limit
	numHandshakeFailures  = 16
)

var handshakeFailureNames = [numHandshakeFailures]string{
	FailureEOF, FailureClientFlags, FailureBadMagic, FailureOptionTooLong,
	FailureTooManyOptions, FailureTLS, FailureTLSRequired, FailureUnknownExport,
	FailureProtocol, FailureTimeout, FailureIO, FailureShutdown,
	FailurePeerRefused, FailureAccessDenied, FailureEvicted, FailureExportBusy,
}

// ExportStats are the transmission counters of one export.
type ExportStats struct {
	// Connections is the number of connections in transmission on it.
	Connections int64
	// Ops holds per-command counters keyed by command name ("read",
	// "write", "flush", "trim", "cache", "write_zeroes", "block_status",
	// "unknown"); commands never seen are absent.
	Ops map[string]OpStats
	// Errors counts error replies by NBD errno name ("EIO", "ENOSPC", ...).
	Errors map[string]uint64
}

// OpStats are the counters of one command on one export.
type OpStats struct {
	Requests uint64
	Errors   uint64
	// Bytes is the payload moved: read or written data, or the length
	// trimmed, zeroed, cached or queried.
	Bytes uint64
	// LatencySum is the total time from reading the request header to
	// handing the reply to the socket.
	LatencySum time.Duration
	// LatencyBuckets[i] counts requests whose latency was at most
	// LatencyBounds[i] (and above the previous bound); the last bucket
	// counts the rest. Buckets are not cumulative.
	LatencyBuckets [len(LatencyBounds) + 1]uint64
}

// LatencyBounds are the upper bounds of OpStats.LatencyBuckets.
var LatencyBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond,
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second,
}

// numOpSlots covers commands 0..8 plus one slot for unknown types.
const numOpSlots = int(wire.CmdResize) + 2

// errnoSlots lists the NBD error values in Stats order.
var errnoSlots = [...]uint32{wire.EPERM, wire.EIO, wire.ENOMEM, wire.EINVAL, wire.ENOSPC, wire.EOVERFLOW, wire.ENOTSUP, wire.ESHUTDOWN}

// serverStats is the live, atomically updated form of Stats.
type serverStats struct {
	connsOpen  atomic.Int64
	connsTotal atomic.Uint64
	hsFailures [numHandshakeFailures]atomic.Uint64
	// accessDenied counts INFO, GO and EXPORT_NAME refused with
	// ErrAccessDenied.
	accessDenied atomic.Uint64
	limits       [numLimits]atomic.Uint64

	mu      sync.Mutex
	exports map[string]*exportStats
}

type exportStats struct {
	conns  atomic.Int64
	ops    [numOpSlots]opStats
	errnos [len(errnoSlots) + 1]atomic.Uint64 // last slot: anything else
}

type opStats struct {
	requests, errors, bytes, latency atomic.Uint64
	buckets                          [len(LatencyBounds) + 1]atomic.Uint64
}

func (s *serverStats) handshakeFailed(reason string) {
	for i, n := range handshakeFailureNames {
		if n == reason {
			s.hsFailures[i].Add(1)
			return
		}
	}
}

// export returns the counters of the named export, creating them; the
// connection looks them up once at GO and keeps the pointer.
func (s *serverStats) export(name string) *exportStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exports == nil {
		s.exports = make(map[string]*exportStats)
	}
	e := s.exports[name]
	if e == nil {
		e = new(exportStats)
		s.exports[name] = e
	}
	return e
}

// record counts one finished request. It is on the hot path: atomics
// only, no allocation.
func (e *exportStats) record(cmd uint16, errno uint32, bytes uint64, d time.Duration) {
	slot := int(cmd)
	if slot >= numOpSlots-1 {
		slot = numOpSlots - 1
	}
	o := &e.ops[slot]
	o.requests.Add(1)
	o.bytes.Add(bytes)
	o.latency.Add(uint64(d))
	b := 0
	for b < len(LatencyBounds) && d > LatencyBounds[b] {
		b++
	}
	o.buckets[b].Add(1)
	if errno == 0 {
		return
	}
	o.errors.Add(1)
	i := 0
	for i < len(errnoSlots) && errnoSlots[i] != errno {
		i++
	}
	e.errnos[i].Add(1)
}

func (s *serverStats) snapshot() Stats {
	out := Stats{
		ConnectionsOpen:   s.connsOpen.Load(),
		ConnectionsTotal:  s.connsTotal.Load(),
		AccessDenied:      s.accessDenied.Load(),
		HandshakeFailures: make(map[string]uint64),
		Exports:           make(map[string]ExportStats),
		LimitHits:         make(map[string]uint64),
	}
	for i, n := range limitNames {
		if v := s.limits[i].Load(); v > 0 {
			out.LimitHits[n] = v
		}
	}
	for i, n := range handshakeFailureNames {
		if v := s.hsFailures[i].Load(); v > 0 {
			out.HandshakeFailures[n] = v
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, e := range s.exports {
		es := ExportStats{Connections: e.conns.Load(), Ops: make(map[string]OpStats), Errors: make(map[string]uint64)}
		for slot := range e.ops {
			o := &e.ops[slot]
			if o.requests.Load() == 0 {
				continue
			}
			st := OpStats{
				Requests:   o.requests.Load(),
				Errors:     o.errors.Load(),
				Bytes:      o.bytes.Load(),
				LatencySum: time.Duration(o.latency.Load()),
			}
			for b := range o.buckets {
				st.LatencyBuckets[b] = o.buckets[b].Load()
			}
			op := "unknown"
			if slot < numOpSlots-1 {
				op = wire.CommandName(uint16(slot))
			}
			es.Ops[op] = st
		}
		for i := range e.errnos {
			if v := e.errnos[i].Load(); v > 0 {
				n := "other"
				if i < len(errnoSlots) {
					n = errnoName(errnoSlots[i])
				}
				es.Errors[n] = v
			}
		}
		out.Exports[name] = es
	}
	return out
}
