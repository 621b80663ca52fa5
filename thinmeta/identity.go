package thinmeta

import (
	"fmt"

	"github.com/thind-storage/thind/bm"
)

// The superblock's 16-byte uuid field is the pool's identity. Linux zeroes
// it when it formats a pool and carries it over at every commit (the
// superblock is rewritten in place, not rebuilt); thin_check ignores it;
// thin_dump prints uuid="" and thin_restore and thin_repair write zeroes,
// so a restored pool has no identity until one is set. A zero uuid means
// "none".

// ReadSuperblock reads and checks the superblock of dev without opening
// the pool or writing anything, for checks made before a pool is opened.
func ReadSuperblock(dev bm.Device) (Superblock, error) {
	buf := make([]byte, bm.BlockSize)
	if _, err := dev.ReadAt(buf, SuperblockLocation*bm.BlockSize); err != nil {
		return Superblock{}, fmt.Errorf("superblock: %w", err)
	}
	if err := SuperblockValidator.Check(buf, SuperblockLocation); err != nil {
		return Superblock{}, fmt.Errorf("superblock: %w", err)
	}
	return DecodeSuperblock(buf), nil
}

// UUID returns the pool's identity as committed, zero for none.
func (p *Pool) UUID() [16]byte {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.uuid
}

// SetUUID gives the pool an identity and commits it, with whatever else
// is pending.
func (p *Pool) SetUUID(uuid [16]byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	old := p.uuid
	p.uuid = uuid
	if err := p.commit(); err != nil {
		p.uuid = old
		return err
	}
	return nil
}
