package nbd

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Memory page geometry: 4 KiB pages in leaves of 512 (2 MiB), so a hole
// scan skips a whole unallocated leaf at once and a 1 TiB export costs a
// 4 MiB top-level table.
const (
	memPageShift = 12
	memPageSize  = 1 << memPageShift
	memLeafShift = 9
	memLeafPages = 1 << memLeafShift
)

type memPage struct {
	b [memPageSize]byte
	// zero marks a page allocated by WRITE_ZEROES with NO_HOLE and not
	// written since: reported as allocated-but-zero (STATE_ZERO).
	zero bool
}

type memLeaf struct {
	pages [memLeafPages]*memPage
	n     int // allocated pages, so empty leaves can be dropped
}

// MemoryOptions configure NewMemory.
type MemoryOptions struct {
	// Limit caps the allocated bytes; a write that would exceed it fails
	// with ErrNoSpace, like a thin pool running out of data space. Zero
	// means no limit.
	Limit int64
	// ReadOnly makes the backend declare itself read-only.
	ReadOnly bool
}

// Memory is a sparse in-memory Backend: 4 KiB pages allocated on first
// write, dropped by TRIM and by WRITE_ZEROES without NO_HOLE, and reported
// as holes by BlockStatus. It behaves like a thin volume with a 4 KiB chunk
// and serves as the test oracle for the server.
type Memory struct {
	size atomic.Int64 // grows only (Grow), stored after the leaves it needs
	opts MemoryOptions

	mu        sync.RWMutex
	leaves    []*memLeaf
	allocated int64 // pages
}

// NewMemory returns an empty (all-hole) backend of size bytes.
func NewMemory(size int64, opts MemoryOptions) *Memory {
	m := &Memory{opts: opts, leaves: make([]*memLeaf, memLeaves(size))}
	m.size.Store(size)
	return m
}

// memLeaves is how many leaves size bytes span.
func memLeaves(size int64) int64 {
	return (size + memLeafPages*memPageSize - 1) >> (memPageShift + memLeafShift)
}

// Size implements Backend.
func (m *Memory) Size() int64 { return m.size.Load() }

// Grow makes the backend size bytes long while it is served, as a thin
// volume grows: the new space reads as zeros. It never shrinks.
func (m *Memory) Grow(size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.size.Load(); size < old {
		return fmt.Errorf("memory backend: grow to %d bytes: smaller than %d: %w", size, old, errInvalid)
	}
	if n := memLeaves(size); n > int64(len(m.leaves)) {
		m.leaves = append(m.leaves, make([]*memLeaf, n-int64(len(m.leaves)))...)
	}
	m.size.Store(size)
	return nil
}

// Capabilities implements Backend: everything, natively.
func (m *Memory) Capabilities() Capabilities {
	return Capabilities{
		ReadOnly:    m.opts.ReadOnly,
		Flush:       true,
		FUA:         true,
		Trim:        true,
		Zero:        true,
		FastZero:    true,
		Cache:       true,
		BlockStatus: true,
		MultiConn:   true,
	}
}

// Allocated returns the bytes held in allocated pages.
func (m *Memory) Allocated() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.allocated * memPageSize
}

func (m *Memory) page(pn int64) *memPage {
	l := m.leaves[pn>>memLeafShift]
	if l == nil {
		return nil
	}
	return l.pages[pn&(memLeafPages-1)]
}

// allocPage returns page pn, allocating a zeroed one; callers have checked
// the limit.
func (m *Memory) allocPage(pn int64) *memPage {
	li := pn >> memLeafShift
	l := m.leaves[li]
	if l == nil {
		l = new(memLeaf)
		m.leaves[li] = l
	}
	p := l.pages[pn&(memLeafPages-1)]
	if p == nil {
		p = new(memPage)
		l.pages[pn&(memLeafPages-1)] = p
		l.n++
		m.allocated++
	}
	return p
}

func (m *Memory) freePage(pn int64) {
	li := pn >> memLeafShift
	l := m.leaves[li]
	if l == nil || l.pages[pn&(memLeafPages-1)] == nil {
		return
	}
	l.pages[pn&(memLeafPages-1)] = nil
	l.n--
	m.allocated--
	if l.n == 0 {
		m.leaves[li] = nil
	}
}

// reserve fails with ErrNoSpace if allocating every missing page of
// [off, off+length) would exceed the limit. It runs before any change, so a
// failed write leaves the data as it was.
func (m *Memory) reserve(off, length int64) error {
	if m.opts.Limit == 0 {
		return nil
	}
	var missing int64
	for pn := off >> memPageShift; pn <= (off+length-1)>>memPageShift; pn++ {
		if m.page(pn) == nil {
			missing++
		}
	}
	if (m.allocated+missing)*memPageSize > m.opts.Limit {
		return fmt.Errorf("memory backend: %d more pages exceed the limit of %d bytes: %w", missing, m.opts.Limit, ErrNoSpace)
	}
	return nil
}

func (m *Memory) check(off, length int64) error {
	size := m.size.Load()
	if off < 0 || length < 0 || off > size || length > size-off {
		return fmt.Errorf("memory backend: range %d+%d outside size %d: %w", off, length, size, errInvalid)
	}
	return nil
}

func (m *Memory) writable() error {
	if m.opts.ReadOnly {
		return ErrReadOnly
	}
	return nil
}

// ReadAt implements Backend.
// ReadAtNoWait reads as ReadAt does: memory never waits for I/O.
func (m *Memory) ReadAtNoWait(p []byte, off int64) (bool, error) {
	return m.ReadAt(context.Background(), p, off) == nil, nil
}

func (m *Memory) ReadAt(_ context.Context, p []byte, off int64) error {
	if err := m.check(off, int64(len(p))); err != nil {
		return err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	for len(p) > 0 {
		in := off & (memPageSize - 1)
		n := min(int64(len(p)), memPageSize-in)
		if pg := m.page(off >> memPageShift); pg != nil {
			copy(p[:n], pg.b[in:])
		} else {
			clear(p[:n])
		}
		p, off = p[n:], off+n
	}
	return nil
}

// WriteAt implements Backend. FUA needs nothing: memory is as durable as
// it gets.
func (m *Memory) WriteAt(_ context.Context, p []byte, off int64, _ Flags) error {
	if err := m.writable(); err != nil {
		return err
	}
	if err := m.check(off, int64(len(p))); err != nil || len(p) == 0 {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.reserve(off, int64(len(p))); err != nil {
		return err
	}
	for len(p) > 0 {
		in := off & (memPageSize - 1)
		n := min(int64(len(p)), memPageSize-in)
		pg := m.allocPage(off >> memPageShift)
		copy(pg.b[in:], p[:n])
		pg.zero = false
		p, off = p[n:], off+n
	}
	return nil
}

// Flush implements Backend.
func (m *Memory) Flush(context.Context) error { return nil }

// Trim implements Backend: whole pages are freed, partial ones are left
// alone (TRIM is a hint), so block status stays honest.
func (m *Memory) Trim(_ context.Context, off, length int64, _ Flags) error {
	if err := m.writable(); err != nil {
		return err
	}
	if err := m.check(off, length); err != nil {
		return err
	}
	first := (off + memPageSize - 1) >> memPageShift
	end := (off + length) >> memPageShift
	m.mu.Lock()
	defer m.mu.Unlock()
	for pn := first; pn < end; pn++ {
		m.freePage(pn)
	}
	return nil
}

// Zero implements Backend. Without NO_HOLE whole pages are freed and the
// partial edges of allocated pages cleared in place, which is always fast.
// With NO_HOLE every page is allocated and cleared; that needs memory, so
// FAST_ZERO with NO_HOLE fails with ErrNotSupported before touching data.
func (m *Memory) Zero(_ context.Context, off, length int64, flags Flags) error {
	if err := m.writable(); err != nil {
		return err
	}
	if err := m.check(off, length); err != nil || length == 0 {
		return err
	}
	if flags&FlagNoHole != 0 && flags&FlagFastZero != 0 {
		return fmt.Errorf("memory backend: zeroing without holes allocates: %w", ErrNotSupported)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if flags&FlagNoHole != 0 {
		if err := m.reserve(off, length); err != nil {
			return err
		}
	}
	for end := off + length; off < end; {
		pn := off >> memPageShift
		in := off & (memPageSize - 1)
		n := min(end-off, memPageSize-in)
		whole := n == memPageSize
		switch {
		case flags&FlagNoHole != 0:
			fresh := m.page(pn) == nil
			pg := m.allocPage(pn)
			clear(pg.b[in : in+n])
			pg.zero = pg.zero || whole || fresh
		case whole:
			m.freePage(pn)
		default:
			if pg := m.page(pn); pg != nil {
				clear(pg.b[in : in+n])
			}
		}
		off += n
	}
	return nil
}

// Cache implements Backend: memory needs no prefetch.
func (m *Memory) Cache(_ context.Context, off, length int64) error { return m.check(off, length) }

// pageFlags is the base:allocation state of a page.
func pageFlags(pg *memPage) ExtentFlags {
	switch {
	case pg == nil:
		return ExtentHole | ExtentZero
	case pg.zero:
		return ExtentZero
	}
	return 0
}

// BlockStatus implements Backend. Extents end at off+length; unallocated
// leaves are skipped whole.
func (m *Memory) BlockStatus(_ context.Context, off, length int64, max int, dst []Extent) ([]Extent, error) {
	if err := m.check(off, length); err != nil {
		return dst, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	start := len(dst)
	for end := off + length; off < end; {
		pn := off >> memPageShift
		var f ExtentFlags
		var next int64 // end of the run of equal state starting at off
		if m.leaves[pn>>memLeafShift] == nil {
			f, next = ExtentHole|ExtentZero, (pn>>memLeafShift+1)<<(memLeafShift+memPageShift)
		} else {
			f, next = pageFlags(m.page(pn)), (pn+1)<<memPageShift
		}
		n := min(end, next) - off
		if k := len(dst); k > start && dst[k-1].Flags == f {
			dst[k-1].Length += n
		} else {
			if k-start == max {
				break
			}
			dst = append(dst, Extent{Length: n, Flags: f})
		}
		off += n
	}
	return dst, nil
}
