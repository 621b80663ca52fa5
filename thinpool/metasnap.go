package thinpool

import "context"

// ReserveMetadataSnap takes a metadata snapshot of the pool as it stands
// (dm-thin's reserve_metadata_snap message): a held copy of the
// superblock whose trees stay as they are, so that thin_dump -m,
// thin_delta -m and thind meta read a consistent view of the live pool's
// metadata device. Everything done so far is committed first, data
// flushed, and the snapshot is durable when this returns, so a tool that
// reads the device then finds it.
func (p *Pool) ReserveMetadataSnap(ctx context.Context) error {
	if err := p.canChangeMetadata(); err != nil {
		return err
	}
	p.hold.Lock()
	defer p.hold.Unlock()
	// The held copy takes the committed roots, so nothing may be left
	// uncommitted when it is made: commit until a commit leaves nothing
	// behind, then take it under the same exclusive lock. (thinmeta's
	// own commit inside the reserve then has nothing to write but the
	// superblock, and the data it maps is already flushed.)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.commitNow(true); err != nil {
			return err
		}
		p.txn.Lock()
		if !p.mdDirty.Load() {
			break
		}
		p.txn.Unlock()
	}
	err := p.md.ReserveMetadataSnap()
	if err == nil {
		p.mdDirty.Store(true)
	}
	p.txn.Unlock()
	if err != nil {
		return err
	}
	return p.commitNow(true)
}

// ReleaseMetadataSnap drops the held metadata snapshot (dm-thin's
// release_metadata_snap message) and the metadata blocks only it kept,
// durably.
func (p *Pool) ReleaseMetadataSnap(ctx context.Context) error {
	if err := p.canChangeMetadata(); err != nil {
		return err
	}
	p.hold.Lock()
	defer p.hold.Unlock()
	p.txn.Lock()
	err := p.md.ReleaseMetadataSnap()
	if err == nil {
		p.mdDirty.Store(true)
	}
	p.txn.Unlock()
	if err != nil {
		return err
	}
	return p.commitNow(true)
}
