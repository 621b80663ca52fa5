package bm

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// DefaultCacheBytes is the cache size when Options leave it zero.
const DefaultCacheBytes = 64 << 20

// minShardBlocks keeps shards big enough that locked blocks rarely push a
// shard over its share of the bound.
const minShardBlocks = 16

// Options configure a Manager.
type Options struct {
	// CacheBytes bounds the memory held by cached blocks. A shard whose
	// blocks are all locked may briefly exceed its share.
	CacheBytes int64
	// ReadOnly refuses write locks and never writes to the device.
	ReadOnly bool
}

// Manager hands out locked blocks of a metadata device through a cache
// (dm_block_manager).
type Manager struct {
	dev      Device
	nrBlocks atomic.Uint64
	readOnly bool
	shards   []shard
	mask     uint64
	closed   atomic.Bool
	flushMu  sync.Mutex // one flush at a time
	boxes    sync.Map   // Validator -> *validatorBox

	misses, reads, writes, evictions atomic.Uint64

	// beforeWriteClaim, when set by a test, runs under the shard mutex
	// between a write lock's checks and its claim of the block. It is
	// set before the manager is shared and never in production.
	beforeWriteClaim func(b uint64)
}

// Stats is a snapshot of the cache's counters.
type Stats struct {
	Hits, Misses, Reads, Writes, Evictions uint64
	CachedBlocks, DirtyBlocks              int
	CapacityBlocks                         int
}

// New returns a manager for the first nrBlocks blocks of dev.
func New(dev Device, nrBlocks uint64, opts Options) *Manager {
	cacheBytes := opts.CacheBytes
	if cacheBytes <= 0 {
		cacheBytes = DefaultCacheBytes
	}
	capacity := max(int(cacheBytes/BlockSize), minShardBlocks)
	nshards := 1
	for nshards < 64 && capacity/(nshards*2) >= minShardBlocks {
		nshards *= 2
	}
	m := &Manager{
		dev:      dev,
		readOnly: opts.ReadOnly,
		shards:   make([]shard, nshards),
		mask:     uint64(nshards - 1),
	}
	m.nrBlocks.Store(nrBlocks)
	for i := range m.shards {
		m.shards[i].capacity = capacity / nshards
	}
	return m
}

// NrBlocks returns the number of blocks the manager addresses.
func (m *Manager) NrBlocks() uint64 { return m.nrBlocks.Load() }

// Grow makes blocks up to nrBlocks addressable, after the device grew.
func (m *Manager) Grow(nrBlocks uint64) {
	if nrBlocks > m.nrBlocks.Load() {
		m.nrBlocks.Store(nrBlocks)
	}
}

// ReadOnly reports whether the manager refuses writes.
func (m *Manager) ReadOnly() bool { return m.readOnly }

// Device returns the device the manager runs on.
func (m *Manager) Device() Device { return m.dev }

func (m *Manager) shardOf(b uint64) *shard {
	// Consecutive blocks land in different shards.
	return &m.shards[(b*0x9E3779B97F4A7C15>>32)&m.mask]
}

// Block is a locked block. It is a small value: copying it does not copy
// the data, and it must be unlocked exactly once.
type Block struct {
	e     *entry
	write bool
}

// Location returns the block number.
func (b Block) Location() uint64 { return b.e.loc }

// Data returns the block's 4096 bytes. Only a write-locked block's data
// may be modified.
func (b Block) Data() []byte { return b.e.data }

// Valid reports whether b holds a lock.
func (b Block) Valid() bool { return b.e != nil }

type lockMode int

const (
	lockRead lockMode = iota
	lockWrite
	lockWriteZero
)

func (l lockMode) String() string {
	if l == lockRead {
		return "read"
	}
	return "write"
}

// ReadLock returns block b, read from the device if it is not cached and
// checked with v, locked for reading.
func (m *Manager) ReadLock(b uint64, v Validator) (Block, error) {
	return m.lock(b, v, lockRead)
}

// WriteLock returns block b checked with v, locked for writing; it will be
// written back with v's Prepare.
func (m *Manager) WriteLock(b uint64, v Validator) (Block, error) {
	return m.lock(b, v, lockWrite)
}

// WriteLockZero returns block b zero-filled, without reading it, locked for
// writing.
func (m *Manager) WriteLockZero(b uint64, v Validator) (Block, error) {
	return m.lock(b, v, lockWriteZero)
}

func (m *Manager) lock(b uint64, v Validator, mode lockMode) (Block, error) {
	if m.closed.Load() {
		return Block{}, ErrClosed
	}
	if n := m.nrBlocks.Load(); b >= n {
		return Block{}, fmt.Errorf("block %d of %d: %w", b, n, ErrOutOfRange)
	}
	s := m.shardOf(b)
	if mode == lockRead {
		// Fast path: a cached block already checked with v takes a
		// read lock with one CAS, no mutex.
		if e := s.get(b); e != nil {
			if vb := e.vbox.Load(); vb != nil && (vb.v == v || v == NoValidator) {
				for {
					st := e.state.Load()
					if st < stateFree {
						break
					}
					if e.state.CompareAndSwap(st, st+1) {
						e.ref.Store(true)
						s.hits.Add(1)
						return Block{e: e}, nil
					}
				}
			}
		}
	} else if m.readOnly {
		return Block{}, fmt.Errorf("block %d: %w", b, ErrReadOnly)
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	e := s.get(b)
	if e != nil {
		s.hits.Add(1)
		switch st := e.state.Load(); {
		case st == stateWriter:
			return Block{}, &LockError{Block: b, Want: mode.String(), Held: "write"}
		case mode != lockRead && st > stateFree:
			return Block{}, &LockError{Block: b, Want: mode.String(), Held: "read"}
		}
		e.ref.Store(true)
	} else {
		m.misses.Add(1)
		if err := m.makeRoom(s); err != nil {
			return Block{}, err
		}
		e = &entry{loc: b, data: s.newBuffer()}
		if mode == lockWriteZero {
			clear(e.data)
		} else if err := m.readBlock(e); err != nil {
			s.free = append(s.free, e.data)
			return Block{}, err
		}
		s.add(e)
	}

	if mode == lockRead {
		if err := m.validate(e, v); err != nil {
			return Block{}, err
		}
		e.state.Add(1) // no writer: checked above, and writers need mu
		return Block{e: e}, nil
	}
	if m.beforeWriteClaim != nil {
		m.beforeWriteClaim(b)
	}
	// A lock-free reader may have taken the block since the check above
	// (it needs no mutex): claim the block only if it is still free.
	// Claim before zeroing or validating, so no reader sees either.
	if !e.state.CompareAndSwap(stateFree, stateWriter) {
		return Block{}, &LockError{Block: b, Want: mode.String(), Held: "read"}
	}
	if mode == lockWriteZero {
		clear(e.data)
		e.vbox.Store(m.box(v))
	} else if err := m.validate(e, v); err != nil {
		e.state.Store(stateFree)
		return Block{}, err
	}
	e.dirty.Store(true)
	return Block{e: e, write: true}, nil
}

// box returns the shared box of a validator.
func (m *Manager) box(v Validator) *validatorBox {
	if b, ok := m.boxes.Load(v); ok {
		return b.(*validatorBox)
	}
	b, _ := m.boxes.LoadOrStore(v, &validatorBox{v: v})
	return b.(*validatorBox)
}

// validate checks e's content with v unless it already passed v, under
// the shard mutex. Raw reads (NoValidator) are compatible with any type.
func (m *Manager) validate(e *entry, v Validator) error {
	have := e.validator()
	if v == NoValidator || have == v {
		return nil
	}
	if have != nil && have != NoValidator {
		return &ValidatorMismatchError{Block: e.loc, Have: have.Name(), Use: v.Name()}
	}
	if err := v.Check(e.data, e.loc); err != nil {
		return err
	}
	e.vbox.Store(m.box(v))
	return nil
}

func (m *Manager) readBlock(e *entry) error {
	m.reads.Add(1)
	n, err := m.dev.ReadAt(e.data, int64(e.loc)*BlockSize)
	if n == BlockSize {
		return nil
	}
	if err == nil {
		err = errors.New("short read")
	}
	return &IOError{Block: e.loc, Op: "read", Err: err}
}

// makeRoom evicts unlocked blocks until s is below its capacity, giving
// blocks used since the hand last passed a second chance (CLOCK). Dirty
// blocks are written back first: they are never blocks the committed
// superblock reaches (tm never writes those in place), so writing them
// early is safe. The superblock is only written by FlushAndUnlock.
func (m *Manager) makeRoom(s *shard) error {
	for scanned := 0; s.count >= s.capacity && scanned < 2*s.count+2; scanned++ {
		e := s.tail
		if e == nil {
			return nil
		}
		s.unlink(e)
		s.pushFront(e)
		if e.ref.Swap(false) {
			continue
		}
		if e.dirty.Load() && e.loc == 0 {
			continue
		}
		if !e.state.CompareAndSwap(stateFree, stateEvicted) {
			continue // locked
		}
		if e.dirty.Load() {
			if err := m.writeRun([]*entry{e}, nil); err != nil {
				e.state.Store(stateFree)
				return err
			}
		}
		s.remove(e)
		m.evictions.Add(1)
	}
	return nil
}

// Unlock releases a block returned by one of the lock calls.
func (m *Manager) Unlock(b Block) {
	if b.write {
		b.e.state.Store(stateFree)
	} else {
		b.e.state.Add(-1)
	}
}

// Flush writes every dirty block except the superblock (block 0) and syncs
// the device.
func (m *Manager) Flush() error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	return m.flush()
}

func (m *Manager) flush() error {
	if m.readOnly {
		return nil
	}
	dirty := m.collectDirty()
	if err := m.writeSorted(dirty); err != nil {
		return err
	}
	if err := m.dev.Sync(); err != nil {
		return &IOError{Block: 0, Op: "sync", Err: err}
	}
	return nil
}

// FlushAndUnlock commits: every other dirty block is written and synced
// before the write-locked superblock sb is written and synced, so the
// superblock never names blocks that are not on disk yet.
func (m *Manager) FlushAndUnlock(sb Block) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	defer m.Unlock(sb)
	if !sb.write {
		return fmt.Errorf("block %d: FlushAndUnlock needs a write-locked superblock", sb.e.loc)
	}
	if err := m.flush(); err != nil {
		return err
	}
	if err := m.writeRun([]*entry{sb.e}, nil); err != nil {
		return err
	}
	if err := m.dev.Sync(); err != nil {
		return &IOError{Block: sb.e.loc, Op: "sync", Err: err}
	}
	return nil
}

// collectDirty returns the dirty blocks other than the superblock, sorted.
func (m *Manager) collectDirty() []*entry {
	var dirty []*entry
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		s.forEach(func(e *entry) {
			if e.dirty.Load() && e.loc != 0 {
				dirty = append(dirty, e)
			}
		})
		s.mu.Unlock()
	}
	slices.SortFunc(dirty, func(a, b *entry) int {
		switch {
		case a.loc < b.loc:
			return -1
		case a.loc > b.loc:
			return 1
		}
		return 0
	})
	return dirty
}

// maxRun bounds one coalesced write.
const maxRun = 256

func (m *Manager) writeSorted(dirty []*entry) error {
	var scratch []byte
	for len(dirty) > 0 {
		n := 1
		for n < len(dirty) && n < maxRun && dirty[n].loc == dirty[n-1].loc+1 {
			n++
		}
		if err := m.writeRun(dirty[:n], &scratch); err != nil {
			return err
		}
		dirty = dirty[n:]
	}
	return nil
}

// writeRun writes consecutive blocks with one device write, stamping each
// with its validator first.
func (m *Manager) writeRun(run []*entry, scratch *[]byte) error {
	first := run[0].loc
	buf := run[0].data
	for _, e := range run {
		if v := e.validator(); v != nil {
			v.Prepare(e.data, e.loc)
		}
	}
	if len(run) > 1 {
		need := len(run) * BlockSize
		if cap(*scratch) < need {
			*scratch = make([]byte, need)
		}
		buf = (*scratch)[:need]
		for i, e := range run {
			copy(buf[i*BlockSize:], e.data)
		}
	}
	m.writes.Add(uint64(len(run)))
	if _, err := m.dev.WriteAt(buf, int64(first)*BlockSize); err != nil {
		return &IOError{Block: first, Op: "write", Err: err}
	}
	for _, e := range run {
		e.dirty.Store(false)
	}
	return nil
}

// DiscardDirty forgets every dirty, unlocked block without writing it: the
// abort of a transaction. Clean blocks stay cached.
func (m *Manager) DiscardDirty() {
	m.drop(func(e *entry) bool { return e.dirty.Load() })
}

// Forget drops every unlocked block from the cache, clean or dirty.
func (m *Manager) Forget() {
	m.drop(func(*entry) bool { return true })
}

func (m *Manager) drop(which func(*entry) bool) {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		s.forEach(func(e *entry) {
			if which(e) && e.state.CompareAndSwap(stateFree, stateEvicted) {
				s.remove(e)
			}
		})
		s.mu.Unlock()
	}
}

// LockedBlocks returns the number of blocks currently locked; tests use it
// to find leaked locks.
func (m *Manager) LockedBlocks() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		s.forEach(func(e *entry) {
			if e.state.Load() != stateFree {
				n++
			}
		})
		s.mu.Unlock()
	}
	return n
}

// Stats returns a snapshot of the cache's counters.
func (m *Manager) Stats() Stats {
	st := Stats{
		Misses: m.misses.Load(), Reads: m.reads.Load(),
		Writes: m.writes.Load(), Evictions: m.evictions.Load(),
	}
	for i := range m.shards {
		s := &m.shards[i]
		st.Hits += s.hits.Load()
		s.mu.Lock()
		st.CachedBlocks += s.count
		st.CapacityBlocks += s.capacity
		s.forEach(func(e *entry) {
			if e.dirty.Load() {
				st.DirtyBlocks++
			}
		})
		s.mu.Unlock()
	}
	return st
}

// Close forgets the cache without writing anything: uncommitted changes are
// dropped, as an abort would.
func (m *Manager) Close() error {
	m.closed.Store(true)
	return nil
}
