package bm

import (
	"errors"
	"io"
	"math/rand/v2"
	"sync"
)

// ErrPowerCut is returned by a MemDevice for every write and sync after the
// power cut it was told to simulate.
var ErrPowerCut = errors.New("simulated power cut")

const memPage = BlockSize

// MemDevice is an in-memory Device that remembers which writes were made
// durable by Sync, so tests can cut the power at any point and reopen what
// a real disk could hold afterwards (after pebble's vfs.MemFS.CrashClone).
// Pages are never modified in place once stored, so the durable and the
// current view share them.
type MemDevice struct {
	mu      sync.Mutex
	size    int64
	durable map[int64][]byte // pages as of the last Sync
	current map[int64][]byte // pages as the device reads now
	pending []pendingWrite   // writes since the last Sync, in order
	writes  int              // block writes accepted so far
	cutAt   int              // writes after this many are dropped; <0: never
	cut     bool
	syncs   int
}

type pendingWrite struct {
	off  int64
	data []byte
}

// NewMemDevice returns a zero-filled device of size bytes.
func NewMemDevice(size int64) *MemDevice {
	return &MemDevice{size: size, durable: make(map[int64][]byte), current: make(map[int64][]byte), cutAt: -1}
}

// Size returns the device size in bytes.
func (d *MemDevice) Size() int64 { return d.size }

// NrBlocks returns the device size in whole blocks.
func (d *MemDevice) NrBlocks() uint64 { return uint64(d.size) / BlockSize }

// CutPowerAfter makes the device accept n more block writes and lose
// every later one: they and every Sync fail with ErrPowerCut.
func (d *MemDevice) CutPowerAfter(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cutAt = d.writes + n
}

// Writes returns how many block writes the device has accepted.
func (d *MemDevice) Writes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.writes
}

// Syncs returns how many syncs succeeded.
func (d *MemDevice) Syncs() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.syncs
}

// ReadAt implements io.ReaderAt.
func (d *MemDevice) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > d.size-off {
		n = int(d.size - off)
	}
	readPages(d.current, p[:n], off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt implements io.WriterAt. Each block a write touches counts as
// one write, and a power cut can fall between them: a multi-block write
// may be torn at a block boundary, as on a real disk.
func (d *MemDevice) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, errors.New("memdevice: write beyond end of device")
	}
	done := 0
	for done < len(p) {
		if d.cutAt >= 0 && d.writes >= d.cutAt {
			d.cut = true
		}
		if d.cut {
			return done, ErrPowerCut
		}
		pos := off + int64(done)
		n := min(int(BlockSize-pos%BlockSize), len(p)-done)
		d.writes++
		w := pendingWrite{off: pos, data: append([]byte(nil), p[done:done+n]...)}
		d.pending = append(d.pending, w)
		writePages(d.current, w.data, w.off)
		done += n
	}
	return done, nil
}

// Sync implements Device: every write so far becomes durable.
func (d *MemDevice) Sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return ErrPowerCut
	}
	for _, w := range d.pending {
		base := w.off - w.off%memPage
		d.durable[base] = d.current[base]
	}
	d.pending = nil
	d.syncs++
	return nil
}

// CrashClone returns what a disk could hold after losing power now: every
// synced write, plus each unsynced one with probability keep (0 drops them
// all, 1 keeps them all; a disk may reorder unsynced writes, so any subset
// is possible). Writes are kept or lost whole.
func (d *MemDevice) CrashClone(keep float64, rng *rand.Rand) *MemDevice {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := NewMemDevice(d.size)
	for off, page := range d.durable {
		c.durable[off] = page
	}
	for _, w := range d.pending {
		if keep >= 1 || (keep > 0 && rng.Float64() < keep) {
			writePages(c.durable, w.data, w.off)
		}
	}
	for off, page := range c.durable {
		c.current[off] = page
	}
	return c
}

// Clone returns an independent copy of everything written so far, as if
// it had all been synced.
func (d *MemDevice) Clone() *MemDevice {
	return d.CrashClone(1, nil)
}

func readPages(pages map[int64][]byte, p []byte, off int64) {
	// A missing page reads as zeroes.
	for done := 0; done < len(p); {
		pos := off + int64(done)
		base := pos - pos%memPage
		in := int(pos - base)
		n := min(memPage-in, len(p)-done)
		if page, ok := pages[base]; ok {
			copy(p[done:done+n], page[in:in+n])
		} else {
			clear(p[done : done+n])
		}
		done += n
	}
}

// writePages stores p at off, replacing the pages it touches with new
// ones: stored pages are shared between views and never change.
func writePages(pages map[int64][]byte, p []byte, off int64) {
	for done := 0; done < len(p); {
		pos := off + int64(done)
		base := pos - pos%memPage
		in := int(pos - base)
		n := min(memPage-in, len(p)-done)
		page := make([]byte, memPage)
		copy(page, pages[base])
		copy(page[in:in+n], p[done:done+n])
		pages[base] = page
		done += n
	}
}

// Holes calls fn for each run of pages in [off, off+length) that were
// never written, as SEEK_HOLE reports a sparse file's holes (page
// granularity; the edges are clipped to the range). Writes count whether
// synced or not: an unsynced write is data, as in a page cache.
func (d *MemDevice) Holes(off, length int64, fn func(off, length int64) error) error {
	d.mu.Lock()
	var holes [][2]int64
	end := min(off+length, d.size)
	for pos := off; pos < end; {
		base := pos - pos%memPage
		next := min(base+memPage, end)
		if _, written := d.current[base]; !written {
			if k := len(holes); k > 0 && holes[k-1][1] == pos {
				holes[k-1][1] = next
			} else {
				holes = append(holes, [2]int64{pos, next})
			}
		}
		pos = next
	}
	d.mu.Unlock()
	for _, h := range holes {
		if err := fn(h[0], h[1]-h[0]); err != nil {
			return err
		}
	}
	return nil
}
