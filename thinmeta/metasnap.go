package thinmeta

import (
	"encoding/binary"
	"fmt"

	"github.com/thind-storage/thind/btree"
)

func (p *Pool) heldRoot() (uint64, error) {
	blk, err := p.bm.ReadLock(SuperblockLocation, SuperblockValidator)
	if err != nil {
		return 0, err
	}
	defer p.bm.Unlock(blk)
	return binary.LittleEndian.Uint64(blk.Data()[offHeldRoot:]), nil
}

// MetadataSnap returns the block of the held metadata snapshot, 0 if none.
func (p *Pool) MetadataSnap() (uint64, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.heldRoot()
}

// ReserveMetadataSnap takes a metadata snapshot: a copy of the superblock
// whose trees are kept alive, so that thin_dump -m and friends can read a
// consistent view of a live pool (__reserve_metadata_snap). It commits
// first; the snapshot itself is durable after the next commit.
func (p *Pool) ReserveMetadataSnap() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.commit(); err != nil {
		return err
	}
	held, err := p.heldRoot()
	if err != nil {
		return err
	}
	if held != 0 {
		return ErrMetadataSnapExists
	}
	// Shadowing block 0 with an extra reference copies it.
	if err := p.tm.Inc(SuperblockLocation); err != nil {
		return p.failOp(err)
	}
	cp, _, err := p.tm.Shadow(SuperblockLocation, SuperblockValidator)
	if err != nil {
		return p.failOp(err)
	}
	held = cp.Location()
	d := cp.Data()
	clear(d[offDataSMRoot : offDataSMRoot+smRootAreaSize])
	clear(d[offMetadataSMRoot : offMetadataSMRoot+smRootAreaSize])
	s := DecodeSuperblock(d)
	p.tm.Unlock(cp)
	if err := p.tm.Inc(s.DataMappingRoot); err != nil {
		return p.failOp(err)
	}
	if err := p.tm.Inc(s.DeviceDetailsRoot); err != nil {
		return p.failOp(err)
	}
	sb, err := p.bm.WriteLock(SuperblockLocation, SuperblockValidator)
	if err != nil {
		return p.failOp(err)
	}
	binary.LittleEndian.PutUint64(sb.Data()[offHeldRoot:], held)
	p.bm.Unlock(sb)
	p.heldRootPending = true
	return nil
}

// ReleaseMetadataSnap drops the held metadata snapshot and every block
// only it kept alive.
func (p *Pool) ReleaseMetadataSnap() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	sb, err := p.bm.WriteLock(SuperblockLocation, SuperblockValidator)
	if err != nil {
		return err
	}
	held := binary.LittleEndian.Uint64(sb.Data()[offHeldRoot:])
	binary.LittleEndian.PutUint64(sb.Data()[offHeldRoot:], 0)
	p.bm.Unlock(sb)
	if held == 0 {
		return ErrNoMetadataSnap
	}
	p.heldRootPending = true
	cp, err := p.tm.ReadLock(held, SuperblockValidator)
	if err != nil {
		return p.failOp(fmt.Errorf("metadata snapshot at block %d: %w", held, err))
	}
	s := DecodeSuperblock(cp.Data())
	p.tm.Unlock(cp)
	if err := btree.Del(&p.tr.info, s.DataMappingRoot); err != nil {
		return p.failOp(err)
	}
	if err := btree.Del(&p.tr.details, s.DeviceDetailsRoot); err != nil {
		return p.failOp(err)
	}
	if err := p.tm.Dec(held); err != nil {
		return p.failOp(err)
	}
	return nil
}
