package nbd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// transmission runs the transmission phase of one connection:
//
//	reader ──work──► workers (Options.Workers) ──► replyWriter
//	   ▲                                                │
//	   └──────────── free request slots ◄───────────────┘
//
// The reader parses and validates requests in order, reading WRITE
// payloads into pooled buffers. It takes a request slot before each header
// and budget bytes before each payload or READ buffer, so a full pipeline
// stops it reading from the socket (backpressure). Workers run requests
// against the backend concurrently and build each complete reply. One
// worker at a time writes to the socket (replyWriter): a reply goes out
// whole, its chunks contiguous, in completion order, batched with whatever
// other replies are ready into one writev. Once written, the writer
// releases the buffer and budget and returns the slot. A small READ at
// queue depth 1 that the backend can serve without waiting the reader
// answers itself (readInline).
type transmission struct {
	c     *conn
	be    Backend
	exp   *Export
	stats *exportStats

	told       uint64 // the size the handshake reported; see size
	flags      uint16
	caps       Capabilities
	readOnly   bool
	emulateFUA bool
	minBlock   uint64
	chunked    bool // structured replies or extended headers
	extended   bool
	contexts   []metaContext // selected meta contexts, for BLOCK_STATUS
	maxExtents int

	free   chan *request
	work   chan *request
	rw     *replyWriter
	budget *connBudget
	bufs   *bufPool

	nowait NoWaitReader // be, if it serves READs that cannot wait

	abortOnce sync.Once
	abort     chan struct{}      // closed when the socket is dead
	cancel    context.CancelFunc // cancels backend calls after a hard disconnect
}

func newTransmission(c *conn, s *session) *transmission {
	o := c.srv.opts
	minBlock, _ := blockSizes(s.caps)
	t := &transmission{
		c:          c,
		be:         s.export.Backend,
		exp:        s.export,
		stats:      c.srv.stats.export(s.export.Name),
		told:       uint64(s.size),
		flags:      s.flags,
		caps:       s.caps,
		readOnly:   s.flags&wire.TransReadOnly != 0,
		emulateFUA: !s.caps.FUA,
		minBlock:   uint64(minBlock),
		chunked:    s.structured || s.extended,
		extended:   s.extended,
		maxExtents: o.MaxExtents,
		free:       make(chan *request, o.MaxInFlight),
		work:       make(chan *request, o.MaxInFlight),
		budget:     c.srv.budget.conn(),
		bufs:       c.srv.bufs,
		abort:      make(chan struct{}),
	}
	// A selection made for another export does not carry over.
	if s.meta.export == s.export.Name {
		t.contexts = s.meta.contexts()
	}
	for range o.MaxInFlight {
		t.free <- &request{hdr: make([]byte, 0, 128), out: make([][]byte, 0, 4)}
	}
	t.nowait, _ = t.be.(NoWaitReader)
	t.rw = newReplyWriter(t)
	return t
}

// run serves until the client disconnects, the stream breaks or a
// shutdown stops the reader; in-flight requests always finish and their
// replies are sent (or dropped if the socket is dead) before it returns.
func (t *transmission) run(ctx context.Context) {
	t.stats.conns.Add(1)
	defer t.stats.conns.Add(-1)
	// Backend calls outlive a client that merely stopped sending (DISC
	// requires finishing them) but not a broken connection.
	ctx, t.cancel = context.WithCancel(ctx)
	defer t.cancel()
	// A shutdown stops the reader at the next read; requests already
	// read are still answered, to a client that takes them.
	t.c.setKick(t.c.kickTransmission)

	var workers sync.WaitGroup
	for range t.c.srv.opts.Workers {
		workers.Go(func() {
			for r := range t.work {
				t.execute(ctx, r)
				t.rw.send(r)
			}
		})
	}

	if err := t.read(ctx); err != nil {
		// A broken stream or socket: a hard disconnect, so work for
		// this client is abandoned rather than finished.
		t.c.log.Info("nbd: closing connection", "export", t.exp.Name, "err", err)
		t.cancel()
	}
	close(t.work)
	// The last worker to write sends every reply still queued.
	workers.Wait()
}

// size is the export's live size, which requests are checked against:
// a backend may grow while connections are open (a thin volume resized
// online), and a client told of it out of band, as the kernel's client
// is by NBD_SET_SIZE, may then address the new space on the connection
// it has. Clients that know only the handshake's size never send past
// it, so nothing changes for them. A backend that shrank would have its
// lost range refused, never read past its end.
func (t *transmission) size() uint64 { return uint64(max(0, t.be.Size())) }

// errDisconnect is the reader's clean end: DISC, EOF at a request
// boundary, or a shutdown.
var errDisconnect = errors.New("nbd: client disconnected")

// read is the reader loop. It returns nil on a clean end and the protocol
// violation or socket error otherwise.
func (t *transmission) read(ctx context.Context) error {
	br := t.c.br
	hsize := wire.RequestHeaderSize(t.extended)
	var hb [wire.ExtendedRequestSize]byte
	for {
		var r *request
		select {
		case r = <-t.free:
		case <-t.abort:
			return nil
		}
		err := t.readRequest(br, hb[:hsize], r)
		if errors.Is(err, errLastRequest) {
			t.work <- r
			return nil
		}
		if err != nil {
			t.free <- r
			if errors.Is(err, errDisconnect) {
				return nil
			}
			return err
		}
		if t.readInline(r) {
			t.rw.send(r)
			continue
		}
		t.work <- r
	}
}

// readInline answers r itself, if it is a READ the reader may serve
// (see NoWaitReader): below sparseReadMin (one data chunk, no block
// status), nothing else in flight and no further request buffered, as at
// queue depth 1, and the backend able to serve it without waiting.
// Handing it to a worker readies a goroutine, and with an idle P the
// runtime wakes another thread to run it, whose wakeup the client waits
// for on every request: at QD1 on two CPUs, serving it here halved the
// p50 latency. Anything that may wait (a READ of uncached data, a held
// block, a write, a flush) goes to a worker, so no request waits behind
// a slow one.
func (t *transmission) readInline(r *request) bool {
	if t.nowait == nil || r.Type != wire.CmdRead || r.errno != 0 || r.Length == 0 || r.Length >= sparseReadMin ||
		len(t.free) != cap(t.free)-1 || t.c.br.Buffered() != 0 {
		return false
	}
	buf := *r.buf
	if ok, err := t.nowait.ReadAtNoWait(buf, int64(r.Offset)); !ok || err != nil {
		return false
	}
	if !t.chunked {
		r.hdr = wire.AppendSimpleReply(r.hdr, 0, r.Cookie)
		r.out = append(r.out, r.hdr, buf)
		return true
	}
	r.segs = append(r.segs[:0], segment{length: int64(len(buf))})
	t.replyReadChunks(r)
	return true
}

// readRequest reads one request into r: header, validation, payload.
func (t *transmission) readRequest(br *bufio.Reader, hb []byte, r *request) error {
	if _, err := io.ReadFull(br, hb); err != nil {
		return t.readErr(err, true)
	}
	start := time.Now()
	req, err := wire.DecodeRequest(hb, t.extended)
	if err != nil {
		return err // bad magic: the stream cannot be framed any more
	}
	if req.Type == wire.CmdDisc {
		return errDisconnect
	}
	payload := req.PayloadLength(t.extended)
	if payload > drainLimit {
		return errors.New("nbd: request payload above the drain limit")
	}
	*r = request{Request: req, start: start, hdr: r.hdr[:0], out: r.out[:0], ext: r.ext[:0], segs: r.segs[:0]}
	t.validate(r)
	if r.errno == 0 && t.c.shuttingDown() {
		r.setErr(wire.ESHUTDOWN, "server is shutting down")
	}
	if r.errno != 0 {
		// Keep the stream in sync: consume a payload we will not use.
		if _, err := io.CopyN(io.Discard, br, int64(payload)); err != nil {
			return t.readErr(err, false)
		}
		return nil
	}
	var n int64
	switch req.Type {
	case wire.CmdWrite:
		n = int64(payload)
	case wire.CmdRead:
		n = int64(req.Length)
	case wire.CmdBlockStatus:
		// Room for every extent the reply may carry, or, when the
		// budget is short of that, for fewer (the protocol lets a
		// reply stop short), so that clients such as qemu, which
		// query all the time, are not held up by stalled clients.
		r.maxExt = t.maxExtents
		if n = t.statusBytes(r.maxExt); !t.budget.tryAcquire(n) {
			r.maxExt = min(t.maxExtents, shortStatusExtents)
			n = t.statusBytes(r.maxExt)
			if !t.budget.acquire(n, t.abort, t.c.soft.Done()) {
				return t.budgetGaveUp(r)
			}
		}
		r.held = n
		return nil // the worker sizes the reply buffer; held covers it
	}
	if n == 0 {
		return nil
	}
	// Wait for budget bytes; a shutdown or a dead socket ends the wait.
	if !t.budget.acquire(n, t.abort, t.c.soft.Done()) {
		return t.budgetGaveUp(r)
	}
	r.held = n
	r.buf = t.bufs.get(int(n))
	if req.Type == wire.CmdWrite {
		if _, err := io.ReadFull(br, *r.buf); err != nil {
			t.releaseBuf(r)
			return t.readErr(err, false)
		}
	}
	return nil
}

// statusBytes is what one BLOCK_STATUS of at most maxExt extents per
// selected meta context holds until its reply is written: the backend's
// extents and a reply chunk per context.
func (t *transmission) statusBytes(maxExt int) int64 {
	per := int64(8 + 16) // compact descriptor, Extent
	if t.extended {
		per = 16 + 16
	}
	return int64(max(len(t.contexts), 1)) * (8 + per*int64(maxExt))
}

// shortStatusExtents caps a BLOCK_STATUS reply while the budget is short:
// 8 KiB at most, well within a connection's reservation.
const shortStatusExtents = 256

// maxKeptExtents bounds the extent slice a request slot keeps between
// requests (what a structured READ uses); a larger one (a big
// BLOCK_STATUS) is dropped after its reply, so idle connections do not
// keep MaxExtents-sized slices outside the budget.
const maxKeptExtents = maxReadSegments

// errLastRequest ends the reader after a request it still answers.
var errLastRequest = errors.New("nbd: last request")

// budgetGaveUp ends the reader when a wait for budget bytes ended early:
// after a shutdown began, r is answered ESHUTDOWN (its WRITE payload, if
// any, is left unread: nothing more is read); on a dead socket nothing is.
func (t *transmission) budgetGaveUp(r *request) error {
	select {
	case <-t.abort:
		return errDisconnect
	default:
	}
	r.setErr(wire.ESHUTDOWN, "server is shutting down")
	return errLastRequest
}

// readErr classifies a read error: EOF between requests and the shutdown
// kick are clean ends; anything else is a broken stream.
func (t *transmission) readErr(err error, atBoundary bool) error {
	switch {
	case atBoundary && errors.Is(err, io.EOF):
		return errDisconnect
	case errors.Is(err, os.ErrDeadlineExceeded) && t.c.shuttingDown():
		return errDisconnect
	case errors.Is(err, net.ErrClosed):
		return errDisconnect
	}
	return err
}

// releaseBuf returns r's buffer and budget.
func (t *transmission) releaseBuf(r *request) {
	if r.buf != nil {
		t.bufs.put(r.buf)
		r.buf = nil
	}
	if cap(r.ext) > maxKeptExtents {
		r.ext = nil
	}
	t.budget.release(r.held)
	r.held = 0
}

// maxBatch caps the replies gathered into one writev.
const maxBatch = 64

// statBytes is the byte count a request contributes to statistics.
func (t *transmission) statBytes(r *request) uint64 {
	if r.errno != 0 || r.Type == wire.CmdFlush {
		return 0
	}
	return r.Length
}
