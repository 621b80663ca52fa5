package blk

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Dispatcher sends requests to one Backend through software and hardware
// queues. All methods are safe for concurrent use.
type Dispatcher struct {
	cfg Config
	be  Backend
	vec VectoredBackend // be, if it is vectored
	cp  CopyBackend     // be, if it copies by itself

	noCopy   atomic.Bool // cp reported ErrNotSupported: copy through memory
	copyBufs sync.Pool   // *[]byte of copyChunk bytes for copies through memory

	memAlign, offAlign int64
	size               atomic.Int64
	epoch              time.Time // latencies are measured on its monotonic clock

	hw []*hwQueue
	sw []*swQueue
	rr atomic.Uint64 // spreads plugs and flushes over software queues

	closing atomic.Bool
	stop    chan struct{} // closed when workers must exit
	wg      sync.WaitGroup
	mu      sync.Mutex // serialises Close
	closed  bool
}

// New starts a dispatcher in front of be and takes ownership of it: Close
// closes the backend. If New fails, be is left open for the caller.
func New(be Backend, cfg Config) (*Dispatcher, error) {
	if be == nil {
		return nil, &ConfigError{Field: "backend", Reason: "must not be nil"}
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	size, err := be.Size()
	if err != nil {
		return nil, fmt.Errorf("blk: backend size: %w", err)
	}
	d := &Dispatcher{cfg: cfg, be: be, memAlign: 1, offAlign: 1, epoch: time.Now(), stop: make(chan struct{})}
	d.size.Store(size)
	d.vec, _ = be.(VectoredBackend)
	d.cp, _ = be.(CopyBackend)
	if a, ok := be.(AlignedBackend); ok {
		mem, off := a.IOAlignment()
		d.memAlign, d.offAlign = int64(max(mem, 1)), int64(max(off, 1))
	}
	d.hw = make([]*hwQueue, cfg.HardwareQueues)
	for i := range d.hw {
		d.hw[i] = newHWQueue(d, i, cfg.QueueDepth)
	}
	// Software queue i maps to hardware queue i mod n, like the default
	// CPU to hctx map: neighbours land on different hardware queues.
	d.sw = make([]*swQueue, cfg.SoftwareQueues)
	for i := range d.sw {
		h := d.hw[i%len(d.hw)]
		sq := &swQueue{hw: h, bit: 1 << len(h.swqs), drained: make(chan struct{}, 1)}
		// Start each queue's tag search in a different part of the map.
		sq.hint.Store(uint32(len(h.swqs) * cfg.QueueDepth / max(1, cfg.SoftwareQueues/len(d.hw))))
		h.swqs = append(h.swqs, sq)
		d.sw[i] = sq
	}
	for _, h := range d.hw {
		for range cfg.Workers {
			d.wg.Add(1)
			go h.work(&d.wg)
		}
	}
	return d, nil
}

// Size is the backend size the dispatcher checks requests against.
func (d *Dispatcher) Size() int64 { return d.size.Load() }

// Revalidate reads the backend size again, after the backing file or
// device has grown or shrunk. Requests already checked are not affected.
func (d *Dispatcher) Revalidate() error {
	size, err := d.be.Size()
	if err != nil {
		return fmt.Errorf("blk: backend size: %w", err)
	}
	d.size.Store(size)
	return nil
}

// Drain stops accepting requests (they fail with ErrClosed) and waits
// until every accepted request has completed, or ctx ends. Requests held
// in a Plug count as accepted: finish plugs before draining.
func (d *Dispatcher) Drain(ctx context.Context) error {
	d.closing.Store(true)
	for _, sq := range d.sw {
		for sq.usage.Load() != 0 {
			select {
			case <-sq.drained:
			case <-ctx.Done():
				return fmt.Errorf("blk: drain: %w", ctx.Err())
			}
		}
	}
	return nil
}

// Close drains the dispatcher, stops its workers and closes the backend.
// It returns ErrClosed if called again.
func (d *Dispatcher) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	d.closed = true
	if err := d.Drain(context.Background()); err != nil {
		return err
	}
	close(d.stop)
	d.wg.Wait()
	if err := d.be.Close(); err != nil {
		return fmt.Errorf("blk: close backend: %w", err)
	}
	return nil
}

// Stats returns a snapshot of every hardware queue's counters.
func (d *Dispatcher) Stats() Stats {
	s := Stats{Queues: make([]QueueStats, len(d.hw))}
	for i, h := range d.hw {
		q := &s.Queues[i]
		q.Depth = int(h.tags.depth)
		q.InFlight = h.tags.inUse()
		q.Backlog = h.backlog.Load()
		q.TagSleeps = h.tags.sleeps.Load()
		for _, sq := range h.swqs {
			sq.stats.addTo(q)
		}
	}
	return s
}

// now is the time since the dispatcher started, in nanoseconds.
func (d *Dispatcher) now() int64 { return int64(time.Since(d.epoch)) }
