package daemon

import (
	"context"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/thinpool"
)

// catalogPool lets the catalog change the pool through the engine (so
// snapshots quiesce writes and deletes pass freed blocks down), inside a
// hold on the engine's background commits: the catalog's device change
// and its transaction id must reach the disk in one commit.
type catalogPool struct {
	ctx    context.Context
	engine *thinpool.Pool
	md     *thinmeta.Pool
	commit func() error
}

var _ catalog.Pool = (*catalogPool)(nil)

// withPool runs fn with a catalogPool whose background commits are held.
func (d *Daemon) withPool(ctx context.Context, fn func(p *catalogPool) error) error {
	commit, release := d.st.engine.HoldCommits()
	defer release()
	return fn(&catalogPool{ctx: ctx, engine: d.st.engine, md: d.st.md, commit: commit})
}

func (p *catalogPool) TransactionID() uint64          { return p.md.TransactionID() }
func (p *catalogPool) Devices() []thinmeta.DeviceInfo { return p.md.Devices() }
func (p *catalogPool) DataBlockSize() uint32          { return p.md.DataBlockSize() }
func (p *catalogPool) CreateThin(id uint64) error     { return p.engine.CreateThin(id) }
func (p *catalogPool) CreateSnap(id, origin uint64) error {
	return p.engine.CreateSnap(p.ctx, id, origin)
}
func (p *catalogPool) DeleteThin(id uint64) error { return p.engine.DeleteThin(p.ctx, id) }
func (p *catalogPool) Commit() error              { return p.commit() }
func (p *catalogPool) Abort() error               { return p.engine.Abort() }
func (p *catalogPool) SetTransactionID(cur, next uint64) error {
	return p.engine.SetTransactionID(cur, next)
}
func (p *catalogPool) RemoveRange(id, begin, end uint64) (uint64, error) {
	return p.engine.UnmapBlocks(p.ctx, id, begin, end)
}
