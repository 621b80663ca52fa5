package faultdev

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
)

// Store is what a Device wraps: a metadata device (bm.Device has these
// methods; *os.File and bm.MemDevice are ones).
type Store interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// Device is a Store that fails what its rules match and can lose power.
// It is safe for concurrent use; writes and syncs are serialised, so that
// the bytes saved for a cut are put back in the order they were replaced.
type Device struct {
	inner Store

	mu      sync.Mutex
	rng     *rand.Rand
	rules   []*rule
	undo    []undoWrite // writes since the last successful sync, in order
	cut     bool
	counts  [5]int // injected failures by operation bit
	unsaved int64  // bytes in undo
}

// undoWrite is one unflushed write: what it replaced and what it wrote.
type undoWrite struct {
	off      int64
	old, new []byte
}

// New wraps inner; seed drives the rules' probabilities.
func New(inner Store, seed uint64) *Device {
	return &Device{inner: inner, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Inject adds a rule; the returned func removes it.
func (d *Device) Inject(r Rule) (remove func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	in := &rule{Rule: r}
	d.rules = append(d.rules, in)
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for i, x := range d.rules {
			if x == in {
				d.rules = append(d.rules[:i], d.rules[i+1:]...)
				return
			}
		}
	}
}

// Heal removes every rule: the fault was fixed.
func (d *Device) Heal() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rules = nil
}

// Injected returns how many operations of ops failed by a rule.
func (d *Device) Injected(ops Op) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for i, c := range d.counts {
		if ops&(1<<i) != 0 {
			n += c
		}
	}
	return n
}

// Unflushed returns how many bytes were written since the last sync.
func (d *Device) Unflushed() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.unsaved
}

// check returns the error for op over [off, off+n), if any. Called with
// the device locked. Every rule sees the operation, so After and Count
// of rules that overlap count the same operations.
func (d *Device) check(op Op, off, n int64) error {
	if d.cut {
		return ErrPowerCut
	}
	var hit *rule
	for _, r := range d.rules {
		if r.match(op, off, n, d.rng) && hit == nil {
			hit = r
		}
	}
	if hit == nil {
		return nil
	}
	for i := range d.counts {
		if op == 1<<i {
			d.counts[i]++
		}
	}
	return &Error{Op: op, Off: off, Len: n, Rule: hit.Rule}
}

// ReadAt implements io.ReaderAt.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	err := d.check(OpRead, off, int64(len(p)))
	d.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return d.inner.ReadAt(p, off)
}

// WriteAt implements io.WriterAt. A failed write changes nothing.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	return d.change(OpWrite, off, int64(len(p)), func() (int, error) { return d.inner.WriteAt(p, off) })
}

// change runs a write-like operation over [off, off+n), saving the bytes
// it replaces for a cut.
func (d *Device) change(op Op, off, n int64, do func() (int, error)) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(op, off, n); err != nil {
		return 0, err
	}
	old := make([]byte, n)
	if _, err := d.inner.ReadAt(old, off); err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("faultdev: saving [%d,+%d) before %v: %w", off, n, op, err)
	}
	k, err := do()
	cur := make([]byte, n)
	if _, rerr := d.inner.ReadAt(cur, off); rerr != nil && !errors.Is(rerr, io.EOF) {
		return k, fmt.Errorf("faultdev: reading back [%d,+%d) after %v: %w", off, n, op, rerr)
	}
	d.undo = append(d.undo, undoWrite{off: off, old: old, new: cur})
	d.unsaved += n
	return k, err
}

// Sync implements Store: every write so far becomes durable, and a cut
// will keep it.
func (d *Device) Sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(OpFlush, 0, 0); err != nil {
		return err
	}
	if err := d.inner.Sync(); err != nil {
		return err
	}
	d.undo, d.unsaved = nil, 0
	return nil
}

// Cut loses power: the device puts back what every write since the last
// successful sync replaced, except that each is kept with probability
// keep (drawn from the seed; a disk may have written any of them, in any
// order), and fails every later operation with ErrPowerCut. The wrapped
// store then holds what a disk could hold after the cut, and is synced.
func (d *Device) Cut(keep float64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return nil
	}
	d.cut = true
	kept := make([]bool, len(d.undo))
	for i := range d.undo {
		kept[i] = keep >= 1 || (keep > 0 && d.rng.Float64() < keep)
	}
	// Back to the last sync, then forward with the writes that made it.
	for i := len(d.undo) - 1; i >= 0; i-- {
		if _, err := d.inner.WriteAt(d.undo[i].old, d.undo[i].off); err != nil {
			return fmt.Errorf("faultdev: cut: %w", err)
		}
	}
	for i, w := range d.undo {
		if kept[i] {
			if _, err := d.inner.WriteAt(w.new, w.off); err != nil {
				return fmt.Errorf("faultdev: cut: %w", err)
			}
		}
	}
	d.undo, d.unsaved = nil, 0
	return d.inner.Sync()
}

// PowerOn ends a cut: the device serves again what the wrapped store
// holds, as a disk does when the power comes back.
func (d *Device) PowerOn() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = false
}
