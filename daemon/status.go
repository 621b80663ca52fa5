package daemon

import (
	"context"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/control"
)

// Status reports the pool's state and space.
func (d *Daemon) Status() control.PoolStatus {
	st := d.st.engine.Stats()
	m := st.Metadata
	s := control.PoolStatus{
		DataDir:              d.cfg.DataDir,
		Mode:                 st.Mode.String(),
		ModeReason:           st.ModeReason,
		TransactionID:        m.TransactionID,
		BlockSize:            d.cfg.BlockSize,
		DataBlocks:           m.DataBlocks,
		DataBlocksUsed:       m.DataBlocks - m.DataBlocksFree,
		MetadataBlocks:       m.MetadataBlocks,
		MetadataReserve:      m.MetadataReserve,
		MetadataSnapshotHeld: m.MetadataSnapHeld,
		MetadataSnapshot:     m.MetadataSnap,
		NeedsCheck:           m.NeedsCheck,
		Devices:              m.Devices,
		Commits:              st.Commits,
		Started:              d.started,
	}
	// Report what is in use, reserve included, as dmsetup status does.
	s.MetadataBlocksUsed = m.MetadataBlocks - m.MetadataBlocksFree
	s.DataBytes = s.DataBlocks * d.cfg.BlockSize
	s.DataBytesUsed = s.DataBlocksUsed * d.cfg.BlockSize
	if vols, err := d.cat.List(context.Background(), catalog.Filter{}); err == nil {
		s.Volumes = len(vols)
	}
	return s
}
