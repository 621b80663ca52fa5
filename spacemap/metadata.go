package spacemap

import (
	"errors"
	"fmt"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/btree"
	"github.com/thind-storage/thind/internal/invariants"
	"github.com/thind-storage/thind/tm"
)

// maxRecursiveAllocations bounds the reference changes queued while the
// metadata space map is recursing (MAX_RECURSIVE_ALLOCATIONS).
const maxRecursiveAllocations = 1024

type bopKind uint8

const (
	bopInc bopKind = iota
	bopDec
)

type bop struct {
	kind  bopKind
	block uint64
}

// Metadata is the metadata space map (dm-space-map-metadata.c). It counts
// references to metadata blocks and lives in those very blocks: changing a
// count shadows a bitmap or a reference-count node, which allocates, which
// changes a count. While such a change is in progress (recursion depth >
// 0) further changes are queued as block operations and applied when the
// outermost one returns. Not safe for concurrent use.
type Metadata struct {
	ll, old              *ll
	begin                uint64
	recursion            int
	allocatedThisTransac uint64
	bops                 []bop
	bootstrap            bool

	threshold      uint64
	thresholdFn    func()
	thresholdSet   bool
	thresholdFired bool
}

var _ tm.SpaceMap = (*Metadata)(nil)

// CreateMetadata formats a metadata space map over the first nrBlocks
// blocks of b, leaving blocks below superblock+1 (the superblock) counted
// as used, and returns it with its transaction manager
// (dm_tm_create_with_sm + dm_sm_metadata_create). Blocks 1, 2 and 3 become
// the index, the reference-count tree and the first bitmap, as on Linux.
func CreateMetadata(b *bm.Manager, superblock uint64) (*tm.Manager, *Metadata, error) {
	nrBlocks := min(b.NrBlocks(), MaxMetadataBlocks)
	t := tm.New(b, nil)
	s := &Metadata{ll: newLL(t, metadataIndex), begin: superblock + 1, bootstrap: true}
	t.SetSpaceMap(s)
	s.ll.nrBlocks = 0
	s.old = s.ll.snapshot()

	blk, err := t.NewBlock(IndexValidator)
	if err != nil {
		return nil, nil, err
	}
	s.ll.bitmapRoot = blk.Location()
	t.Unlock(blk)
	if s.ll.refCountRoot, err = btree.Empty(&s.ll.refInfo); err != nil {
		return nil, nil, err
	}
	if err := s.ll.extend(nrBlocks); err != nil {
		return nil, nil, err
	}
	s.bootstrap = false
	// Count what the bootstrap allocator handed out, the superblock
	// included. Changes they cause are queued behind them.
	s.in()
	for blk := superblock; blk < s.begin; blk++ {
		if err := s.addBop(bopInc, blk); err != nil {
			return nil, nil, err
		}
	}
	if err := s.out(); err != nil {
		return nil, nil, err
	}
	if err := s.Commit(); err != nil {
		return nil, nil, err
	}
	return t, s, nil
}

// OpenMetadata opens a committed metadata space map from its root.
func OpenMetadata(b *bm.Manager, r Root) (*tm.Manager, *Metadata, error) {
	if r.NrBlocks > b.NrBlocks() {
		return nil, nil, fmt.Errorf("metadata space map covers %d blocks, the device has %d", r.NrBlocks, b.NrBlocks())
	}
	t := tm.New(b, nil)
	s := &Metadata{ll: newLL(t, metadataIndex)}
	t.SetSpaceMap(s)
	if err := s.ll.open(r); err != nil {
		return nil, nil, err
	}
	s.old = s.ll.snapshot()
	return t, s, nil
}

func (s *Metadata) recursing() bool { return s.recursion > 0 }

func (s *Metadata) in() { s.recursion++ }

func (s *Metadata) out() error {
	if s.recursion == 0 {
		return errors.New("metadata space map: lost track of recursion depth")
	}
	var err error
	if s.recursion == 1 {
		err = s.applyBops()
	}
	s.recursion--
	return err
}

func (s *Metadata) addBop(k bopKind, b uint64) error {
	if len(s.bops) >= maxRecursiveAllocations {
		return errors.New("metadata space map: too many recursive allocations")
	}
	s.bops = append(s.bops, bop{kind: k, block: b})
	return nil
}

// applyBops applies queued operations in order. Applying one may queue
// more (the recursion depth is still one), which this loop then applies.
func (s *Metadata) applyBops() error {
	for len(s.bops) > 0 {
		op := s.bops[0]
		var err error
		if op.kind == bopInc {
			_, err = s.ll.inc(op.block)
		} else {
			_, err = s.ll.dec(op.block)
		}
		if err != nil {
			return err
		}
		s.bops = s.bops[1:]
	}
	s.bops = s.bops[:0:0]
	return nil
}

// adjustment sums the queued changes to b.
func (s *Metadata) adjustment(b uint64) int64 {
	var adj int64
	for _, op := range s.bops {
		if op.block == b {
			if op.kind == bopInc {
				adj++
			} else {
				adj--
			}
		}
	}
	return adj
}

func (s *Metadata) pending(b uint64) bool {
	for _, op := range s.bops {
		if op.block == b {
			return true
		}
	}
	return false
}

// NrBlocks returns the number of blocks the map covers.
func (s *Metadata) NrBlocks() uint64 { return s.ll.nrBlocks }

// NrAllocated returns the number of blocks with a non-zero count.
func (s *Metadata) NrAllocated() uint64 { return s.ll.nrAllocated }

// NrFree returns how many blocks can still be allocated in this
// transaction.
func (s *Metadata) NrFree() uint64 {
	used := s.old.nrAllocated + s.allocatedThisTransac
	if used >= s.old.nrBlocks {
		return 0
	}
	return s.old.nrBlocks - used
}

// Count implements tm.SpaceMap.
func (s *Metadata) Count(b uint64) (uint32, error) {
	if s.bootstrap {
		if b < s.begin {
			return 1, nil
		}
		return 0, nil
	}
	c, err := s.ll.lookup(b)
	if err != nil {
		return 0, err
	}
	return uint32(int64(c) + s.adjustment(b)), nil
}

// CountIsMoreThanOne implements tm.SpaceMap.
func (s *Metadata) CountIsMoreThanOne(b uint64) (bool, error) {
	if s.bootstrap {
		return false, nil
	}
	adj := s.adjustment(b)
	if adj > 1 {
		return true, nil
	}
	c, err := s.ll.lookupBitmap(b)
	if err != nil {
		return false, err
	}
	if c == 3 {
		return true, nil
	}
	return int64(c)+adj > 1, nil
}

// Inc implements tm.SpaceMap.
func (s *Metadata) Inc(b uint64) error { return s.change(bopInc, b) }

// Dec implements tm.SpaceMap.
func (s *Metadata) Dec(b uint64) error { return s.change(bopDec, b) }

func (s *Metadata) change(k bopKind, b uint64) error {
	if s.bootstrap || s.recursing() {
		return s.addBop(k, b)
	}
	s.in()
	var err error
	if k == bopInc {
		_, err = s.ll.inc(b)
	} else {
		_, err = s.ll.dec(b)
	}
	if err2 := s.out(); err == nil {
		err = err2
	}
	return err
}

// NewBlock implements tm.SpaceMap: the lowest block at or after the last
// allocation that is free now, free at the last commit, and has no queued
// change, wrapping round to the start once.
func (s *Metadata) NewBlock() (uint64, error) {
	if s.bootstrap {
		// The whole device is unused: hand out blocks in order.
		if s.begin >= s.ll.nrBlocks && s.ll.nrBlocks != 0 || s.begin >= s.ll.tm.BM().NrBlocks() {
			return 0, ErrNoSpace
		}
		b := s.begin
		s.begin++
		return b, nil
	}
	var pending func(uint64) bool
	if len(s.bops) > 0 {
		pending = s.pending
	}
	b, err := findCommonFree(s.old, s.ll, s.begin, s.ll.nrBlocks, pending)
	if err == ErrNoSpace {
		b, err = findCommonFree(s.old, s.ll, 0, s.begin, pending)
	}
	if err != nil {
		return 0, fmt.Errorf("metadata device: %w", err)
	}
	s.begin = b + 1
	if invariants.Enabled {
		assertAllocatable("metadata space map", s.old, s.ll, b, pending)
	}
	if err := s.Inc(b); err != nil {
		return 0, err
	}
	s.allocatedThisTransac++
	s.checkThreshold()
	return b, nil
}

// Commit implements tm.SpaceMap: the index block is rewritten if any entry
// changed, and the result becomes the committed state.
func (s *Metadata) Commit() error {
	if err := s.ll.commit(); err != nil {
		return fmt.Errorf("metadata space map: %w", err)
	}
	s.old = s.ll.snapshot()
	s.begin = 0
	s.allocatedThisTransac = 0
	return nil
}

// Root returns the root to store in the superblock (after Commit).
func (s *Metadata) Root() Root { return s.ll.root() }

// Extend grows the map by extra blocks (sm_metadata_extend). The new
// bitmaps are allocated from the new area by the bootstrap allocator, and
// the space map is then brought up to date with them until counting them
// allocates nothing more.
func (s *Metadata) Extend(extra uint64) error {
	if s.recursing() {
		return errors.New("metadata space map: extend while recursing")
	}
	oldLen := s.ll.nrBlocks
	s.begin = oldLen
	s.bootstrap = true
	defer func() { s.bootstrap = false }()
	if err := s.ll.extend(extra); err != nil {
		return err
	}
	for {
		for b := oldLen; b < s.begin; b++ {
			if err := s.addBop(bopInc, b); err != nil {
				return err
			}
		}
		oldLen = s.begin
		s.in()
		if err := s.out(); err != nil {
			return err
		}
		if err := s.ll.commit(); err != nil {
			return err
		}
		if oldLen == s.begin {
			return nil
		}
	}
}

// SetThreshold registers fn to run once each time the number of free
// blocks drops to threshold or below (an edge-triggered low-water mark).
func (s *Metadata) SetThreshold(threshold uint64, fn func()) {
	s.threshold, s.thresholdFn, s.thresholdSet, s.thresholdFired = threshold, fn, true, false
}

func (s *Metadata) checkThreshold() {
	if !s.thresholdSet {
		return
	}
	below := s.NrFree() <= s.threshold
	if below && !s.thresholdFired && s.thresholdFn != nil {
		s.thresholdFn()
	}
	s.thresholdFired = below
}
