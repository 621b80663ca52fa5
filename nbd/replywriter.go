package nbd

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// replyWriter sends complete replies in completion order without a
// goroutine of its own: the worker that finishes a request queues its
// reply and, if no other worker is writing, becomes the writer and sends
// every queued reply, its own and those queued meanwhile, in one writev
// per batch (flat combining). A reply so costs no goroutine switch, and
// replies batch exactly when they pile up.
type replyWriter struct {
	t *transmission

	mu      sync.Mutex
	queued  []*request
	writing bool // a worker is sending; only it touches the fields below

	batch []*request
	vb    [][]byte // backing array of vec: WriteTo consumes the slice
	bw    *bufio.Writer
	dead  bool
}

func newReplyWriter(t *transmission) *replyWriter {
	w := &replyWriter{
		t:      t,
		queued: make([]*request, 0, maxBatch),
		batch:  make([]*request, 0, maxBatch),
		vb:     make([][]byte, 0, 4*maxBatch),
	}
	// net.Buffers becomes one writev on plain sockets; TLS has no
	// vectored write, so coalesce records through a buffer instead.
	if _, ok := t.c.nc.(*tls.Conn); ok {
		w.bw = bufio.NewWriterSize(t.c.nc, 256<<10)
	}
	return w
}

// send queues r's reply and returns once it is queued, or, if this call
// became the writer, once every reply queued so far has been sent.
func (w *replyWriter) send(r *request) {
	w.mu.Lock()
	w.queued = append(w.queued, r)
	if w.writing {
		w.mu.Unlock()
		return
	}
	w.writing = true
	for len(w.queued) > 0 {
		w.batch, w.queued = w.queued, w.batch[:0]
		w.mu.Unlock()
		w.write(w.batch)
		w.mu.Lock()
	}
	w.writing = false
	w.mu.Unlock()
}

// write sends one batch, then frees the requests.
func (w *replyWriter) write(batch []*request) {
	t := w.t
	// Count the requests before their replies leave, so a client that
	// has its reply sees it in Stats. Latency runs from the request
	// header to the reply handed to the socket.
	now := time.Now()
	for _, r := range batch {
		t.stats.record(r.Type, r.errno, t.statBytes(r), now.Sub(r.start))
	}
	for len(batch) > 0 && !w.dead {
		n := min(len(batch), maxBatch)
		if err := w.writeOut(batch[:n]); err != nil {
			w.dead = true
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.c.srv.limitHit(LimitReply, "nbd: client takes no replies, dropping it",
					"reply_timeout", t.c.replyTimeout(), "export", t.exp.Name, "remote", t.c.raw.RemoteAddr().String())
			} else {
				t.c.log.Debug("nbd: write failed", "err", err)
			}
			t.abortOnce.Do(func() {
				close(t.abort)
				t.cancel()
				t.c.nc.Close() // unblocks the reader
			})
		}
		for _, r := range batch[:n] {
			t.releaseBuf(r)
			r.out = r.out[:0]
			t.free <- r
		}
		batch = batch[n:]
	}
	for _, r := range batch { // the socket is dead: drop the rest
		t.releaseBuf(r)
		r.out = r.out[:0]
		t.free <- r
	}
}

// writeOut writes a batch under the reply deadline (conn.armWrite). On a
// plain socket the deadline is re-armed while the client takes the
// replies, so only one that takes less than minReplyProgress in a whole
// timeout is dropped; a timed-out TLS write cannot be resumed, so there
// it bounds the whole batch.
func (w *replyWriter) writeOut(batch []*request) error {
	w.t.c.armWrite()
	if w.bw != nil {
		for _, r := range batch {
			for _, b := range r.out {
				w.bw.Write(b)
			}
		}
		return w.bw.Flush()
	}
	w.vb = w.vb[:0]
	for _, r := range batch {
		w.vb = append(w.vb, r.out...)
	}
	vec := net.Buffers(w.vb)
	for {
		n, err := vec.WriteTo(w.t.c.nc)
		if err == nil || n < minReplyProgress || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		w.t.c.armWrite()
	}
}

// minReplyProgress is what a write must move within the timeout to have
// it re-armed. The kernel's send buffer keeps growing for a while after
// the client stopped reading (TCP autotuning took another 224 KiB in 2 s
// on loopback), which is not the client reading.
const minReplyProgress = 1 << 20
