package nbd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// Options configure a Server. The zero value serves without TLS with the
// defaults documented on each field.
type Options struct {
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger

	// TLSMode selects NOTLS, SELECTIVETLS or FORCEDTLS behaviour.
	// TLSConfig is required unless the mode is TLSOff; set its ClientAuth
	// and ClientCAs for client-certificate authentication. The server
	// raises MinVersion to TLS 1.3.
	TLSMode   TLSMode
	TLSConfig *tls.Config

	// MaxInFlight caps the requests one connection may have between
	// header read and reply sent; the connection's reader stops reading
	// when it is reached. Default 64.
	MaxInFlight int
	// Workers is the number of goroutines per connection executing
	// requests against the backend. Default 16.
	Workers int
	// BufferBudget caps the payload bytes all connections hold together:
	// WRITE data read ahead, READ buffers until their reply is written,
	// BLOCK_STATUS replies until written. A connection whose reader
	// would exceed it waits (stops reading its socket), so a client that
	// stops reading its replies stops being read. Each connection in
	// transmission keeps a guaranteed share of it (see budget.go), so
	// stalled clients holding the rest do not starve the others.
	// Default 256 MiB; at least 2*MaxPayload.
	BufferBudget int64
	// ConnBufferBudget caps one connection's part of BufferBudget; a
	// single request larger than it is let through when the connection
	// holds nothing else. Default 64 MiB (at most BufferBudget/2).
	ConnBufferBudget int64
	// ReplyTimeout drops a connection whose client takes (almost) no
	// reply bytes for this long. The deadline is re-armed after a write
	// that moved 1 MiB or more, so a client that stalls mid-write goes
	// after one to two timeouts; on TLS, where a timed-out write cannot
	// resume, a batch of replies must go out within it. Default 30s.
	ReplyTimeout time.Duration
	// MaxConnections caps the connections served at once over every
	// listener of the Server; a connection beyond it is closed at once,
	// before the greeting, unless it may displace a handshake (see
	// MaxHandshakes). Default 256.
	MaxConnections int
	// MaxHandshakes caps the connections in the handshake phase at once.
	// A connection beyond it (or beyond MaxConnections) takes the slot
	// of the oldest handshake of the peer with the most in progress when
	// its own peer has fewer or that handshake has lasted a second, and
	// is closed at once otherwise (see admission.go), so clients that
	// never finish a handshake cannot lock others out. Default 64.
	MaxHandshakes int
	// MaxExtents caps the extents in one BLOCK_STATUS reply. Default
	// 16384; the protocol allows fewer than the whole range.
	MaxExtents int

	// HandshakeTimeout bounds the whole option haggling. Default 30s.
	HandshakeTimeout time.Duration
	// ShutdownTimeout bounds a graceful shutdown: after it, connections
	// are closed and backend operations cancelled. Default 10s.
	ShutdownTimeout time.Duration
	// MaxOptions caps the options per connection (plus 4 per export
	// after a LIST, so nbdinfo --list works for many exports). Default 64.
	MaxOptions int

	// AcceptPeer, if set, is asked about every accepted connection
	// before the greeting; an error closes it (counted as
	// FailurePeerRefused). The daemon checks unix peers' credentials.
	AcceptPeer func(*Peer) error
}

// Limits the protocol or this server fixes.
const (
	// MaxPayload is the largest READ or WRITE accepted (and advertised as
	// the maximum payload): 32 MiB, what the kernel and every server use.
	MaxPayload = wire.DefaultMaxPayload
	// drainLimit is the largest WRITE payload read and discarded to answer
	// EINVAL; a larger one closes the connection (a DoS guard).
	drainLimit = 2 * MaxPayload
	// maxOptionLength caps option data; above it the connection closes.
	maxOptionLength = 1 << 20
)

// Defaults of the resource limits, for flags that show them.
const (
	DefaultMaxConnections   = 256
	DefaultMaxHandshakes    = 64
	DefaultBufferBudget     = 256 << 20
	DefaultConnBufferBudget = 64 << 20
	DefaultReplyTimeout     = 30 * time.Second
)

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 64
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	o.Workers = min(o.Workers, o.MaxInFlight)
	if o.BufferBudget <= 0 {
		o.BufferBudget = DefaultBufferBudget
	}
	if o.ConnBufferBudget <= 0 {
		o.ConnBufferBudget = DefaultConnBufferBudget
	}
	o.ConnBufferBudget = min(o.ConnBufferBudget, o.BufferBudget/2)
	if o.ReplyTimeout <= 0 {
		o.ReplyTimeout = DefaultReplyTimeout
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.MaxHandshakes <= 0 {
		o.MaxHandshakes = DefaultMaxHandshakes
	}
	o.MaxHandshakes = min(o.MaxHandshakes, o.MaxConnections)
	if o.MaxExtents <= 0 {
		o.MaxExtents = 16384
	}
	o.MaxExtents = min(o.MaxExtents, 1<<20)
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 30 * time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.MaxOptions <= 0 {
		o.MaxOptions = 64
	}
	return o
}

// Server is an NBD server (fixed newstyle handshake, transmission with
// simple, structured and extended replies) serving the exports of an
// ExportLookup. One Server may Serve several listeners at once.
type Server struct {
	exports ExportLookup
	opts    Options
	tls     *tls.Config
	log     *slog.Logger
	stats   serverStats

	adm      *admission
	budget   *memBudget
	bufs     *bufPool
	limitLog [numLimits]logState
}

// NewServer returns a server for exports.
func NewServer(exports ExportLookup, opts Options) (*Server, error) {
	if exports == nil {
		return nil, errors.New("nbd: NewServer needs an ExportLookup")
	}
	opts = opts.withDefaults()
	s := &Server{exports: exports, opts: opts, log: opts.Logger, adm: newAdmission(opts)}
	cfg, err := serverTLSConfig(opts.TLSMode, opts.TLSConfig)
	if err != nil {
		return nil, err
	}
	s.tls = cfg
	if s.budget, err = newMemBudget(opts); err != nil {
		return nil, err
	}
	s.bufs = newBufPool(opts.BufferBudget / 4)
	s.budget.full = func() {
		s.limitHit(LimitBuffers, "nbd: buffer budget spent, readers wait", "budget", opts.BufferBudget)
	}
	s.budget.low = func() {
		s.bufs.scheduleTrim(func() bool { return s.budget.held() < s.budget.trimAbove/4 })
	}
	return s, nil
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	st := s.stats.snapshot()
	st.BufferedBytes = s.budget.held()
	return st
}

// Serve accepts connections on l and serves them until ctx is done, then
// shuts down gracefully: it closes l; connections still negotiating get
// NBD_REP_ERR_SHUTDOWN for further options; connections in transmission
// stop reading, answer requests already read (ESHUTDOWN if read after the
// shutdown began), let in-flight requests finish and close. After
// Options.ShutdownTimeout the rest are closed and their backend
// operations cancelled. Serve returns once every connection it accepted
// has ended: nil after a shutdown, or the listener's error.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	// soft ends the accept loop and starts the graceful shutdown of this
	// Serve's connections; hard cancels their backend operations.
	soft, cancelSoft := context.WithCancel(ctx)
	defer cancelSoft()
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stop := context.AfterFunc(soft, func() { l.Close() })
	defer stop()

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
	)
	err := s.accept(soft, l, func(nc net.Conn) {
		c := s.admitConn(soft, nc)
		if c == nil {
			return
		}
		mu.Lock()
		conns[nc] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(soft, hard, c)
			mu.Lock()
			delete(conns, nc)
			mu.Unlock()
		}()
	})
	// Whether ctx ended or the listener failed, this Serve is over: its
	// connections must not outlive the call.
	cancelSoft()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(s.opts.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("nbd: shutdown timeout, closing connections", "addr", l.Addr().String())
		cancelHard()
		mu.Lock()
		for nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		<-done
	}
	return err
}

// accept runs the accept loop until ctx is done or the listener fails with
// an error that retrying cannot cure.
func (s *Server) accept(ctx context.Context, l net.Listener, serve func(net.Conn)) error {
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err == nil {
			delay = 0
			serve(nc)
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if !retryableAcceptError(err) {
			return fmt.Errorf("nbd: accept: %w", err)
		}
		// Out of descriptors or memory: back off as net/http does
		// instead of spinning.
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		s.log.Warn("nbd: accept failed, retrying", "err", err, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

func retryableAcceptError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ServeConn serves one already accepted connection until it ends or ctx is
// done (then as Serve does, without the shutdown timeout: the caller owns
// the connection and closes it to force the end). It closes nc.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) {
	if c := s.admitConn(ctx, nc); c != nil {
		s.serveConn(ctx, context.WithoutCancel(ctx), c)
	}
}
