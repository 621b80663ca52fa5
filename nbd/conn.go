package nbd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one client connection through both phases.
type conn struct {
	srv     *Server
	raw     net.Conn // the accepted socket
	nc      net.Conn // raw, or the TLS connection on top of it
	br      *bufio.Reader
	log     *slog.Logger
	peer    *Peer // who the client is; TLS fills in its certificate
	peerErr error // why peerOf failed

	// soft is done once the server starts a graceful shutdown; its Err
	// is checked directly, so the shutdown is seen as soon as it begins.
	// kick, set by the transmission phase, stops its reader; mu orders
	// it against the shutdown callback so a shutdown that races the
	// start of transmission is not missed.
	soft context.Context
	mu   sync.Mutex
	kick func()

	// Handshake admission (admission.go): peerKey groups the client's
	// connections; hsSlot and hsStart are under the admission's mutex;
	// evicted is set when a newer handshake took the slot.
	peerKey string
	hsSlot  bool
	hsStart time.Time
	evicted atomic.Bool

	logState
}

// readBufferSize is the connection's read buffer: several request headers
// and small payloads per read system call; large payloads bypass it.
const readBufferSize = 64 << 10

// serveConn runs an admitted connection (admitConn): handshake, then
// transmission. soft starts a graceful shutdown, hard cancels backend
// operations.
func (s *Server) serveConn(soft, hard context.Context, c *conn) {
	s.stats.connsOpen.Add(1)
	s.stats.connsTotal.Add(1)
	defer s.stats.connsOpen.Add(-1)
	defer s.adm.connDone(c)

	c.br = bufio.NewReaderSize(c.raw, readBufferSize)
	c.log = s.log.With("remote", c.raw.RemoteAddr().String())
	// Closing nc also closes raw, after a TLS close_notify if TLS is up.
	defer func() { c.nc.Close() }()
	stop := context.AfterFunc(soft, c.beginShutdown)
	defer stop()

	err := c.peerErr
	if err == nil && s.opts.AcceptPeer != nil {
		err = s.opts.AcceptPeer(c.peer)
	}
	if err != nil {
		c.handshakeFailed(hsFail(FailurePeerRefused, err))
		return
	}
	peer := c.peer
	sess, err := c.handshake(ContextWithPeer(hard, peer))
	s.adm.endHandshake(c)
	if err != nil {
		c.handshakeFailed(err)
		return
	}
	if sess == nil { // NBD_OPT_ABORT
		return
	}
	defer sess.release(sess.export)
	growSendBuffer(c.raw)
	newTransmission(c, sess).run(hard)
}

// unixSendBuffer is the send buffer asked for a unix connection once it
// is in transmission. The default (net.core.wmem_default, 208 KiB) holds a
// fifth of a 1 MiB READ reply, so each large reply took several writes,
// each parked on the poller until the client drained the socket: 1 MiB
// sequential reads at QD32 ran 2.3 GiB/s, and 2.8 GiB/s with this buffer
// (nbdkit, whose blocking send waits in the kernel, 3.0), in the same
// run. The kernel caps it at net.core.wmem_max and doubles it for its own
// accounting, so a stalled client makes a connection hold at most 2 MiB
// of kernel memory until ReplyTimeout drops it. TCP keeps autotuning,
// which setting a size would turn off.
const unixSendBuffer = 1 << 20

// growSendBuffer raises a unix connection's send buffer; it is a hint, so
// an error (a socket the kernel will not resize) changes nothing.
func growSendBuffer(raw net.Conn) {
	if uc, ok := raw.(*net.UnixConn); ok {
		_ = uc.SetWriteBuffer(unixSendBuffer)
	}
}

// shuttingDown reports whether a graceful shutdown has begun.
func (c *conn) shuttingDown() bool { return c.soft.Err() != nil }

// beginShutdown runs when the shutdown begins: in transmission, it stops
// the reader; in the handshake, it shortens the deadline.
func (c *conn) beginShutdown() {
	c.mu.Lock()
	kick := c.kick
	if kick == nil {
		// Still negotiating: all it can get now is NBD_REP_ERR_SHUTDOWN,
		// so a client that stalls here does not hold the shutdown.
		c.raw.SetDeadline(time.Now().Add(shutdownReplyTimeout))
	}
	c.mu.Unlock()
	if kick != nil {
		kick()
	}
}

// setKick installs the transmission's reader stop, running it at once if a
// shutdown already began.
func (c *conn) setKick(kick func()) {
	c.mu.Lock()
	c.kick = kick
	c.mu.Unlock()
	if c.shuttingDown() {
		kick()
	}
}

// hsError is a handshake failure that ends the connection, with the reason
// counted in Stats.HandshakeFailures.
type hsError struct {
	reason string
	err    error
}

func (e *hsError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *hsError) Unwrap() error { return e.err }

func hsFail(reason string, err error) error { return &hsError{reason: reason, err: err} }

// ioFail classifies a socket error met during the handshake.
func (c *conn) ioFail(err error) error {
	switch {
	case c.evicted.Load():
		return hsFail(FailureEvicted, err)
	case c.shuttingDown():
		return hsFail(FailureShutdown, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return hsFail(FailureEOF, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return hsFail(FailureTimeout, err)
	}
	return hsFail(FailureIO, err)
}

// handshakeFailed counts and logs a failed handshake. A client that just
// goes away (a port probe, nbd issue #165) is logged at debug level only.
func (c *conn) handshakeFailed(err error) {
	reason := FailureProtocol
	var he *hsError
	if errors.As(err, &he) {
		reason = he.reason
	}
	c.srv.stats.handshakeFailed(reason)
	level := slog.LevelInfo
	if reason == FailureEOF || reason == FailureShutdown || reason == FailureEvicted {
		level = slog.LevelDebug
	}
	c.log.Log(context.Background(), level, "nbd: handshake failed", "reason", reason, "err", err)
}

// deadline sets or clears (zero duration) the I/O deadline.
func (c *conn) deadline(d time.Duration) {
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	c.nc.SetDeadline(t)
}

// shutdownReplyTimeout replaces ReplyTimeout once a shutdown began: a
// client that takes no reply bytes for this long is not worth holding
// the shutdown for.
const shutdownReplyTimeout = 2 * time.Second

// armWrite sets the deadline of the next reply write: ReplyTimeout from
// now, shorter once a shutdown began. mu orders it against the shutdown
// kick, which shortens a deadline already armed.
func (c *conn) armWrite() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(c.replyTimeout()))
}

func (c *conn) replyTimeout() time.Duration {
	d := c.srv.opts.ReplyTimeout
	if c.shuttingDown() {
		d = min(d, shutdownReplyTimeout)
	}
	return d
}

// kickTransmission stops the reader at its next read and shortens the
// writer's deadline; it runs once a shutdown began.
func (c *conn) kickTransmission() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.nc.SetReadDeadline(now)
	c.nc.SetWriteDeadline(now.Add(c.replyTimeout()))
}

// logLimited logs at most one backend error per second per connection, so
// a failing disk under a busy client does not flood the log.
func (c *conn) logLimited(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := c.lastLog.Load()
	if now-last < int64(time.Second) || !c.lastLog.CompareAndSwap(last, now) {
		c.suppressed.Add(1)
		return
	}
	if n := c.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	c.log.Warn(msg, args...)
}

// logState is embedded in conn for logLimited.
type logState struct {
	lastLog    atomic.Int64
	suppressed atomic.Int64
}
