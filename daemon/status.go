package daemon

import (
	"context"
	"time"

	"github.com/thind-storage/thind/catalog"
)

// PoolStatus is what `thind pool status` shows.
type PoolStatus struct {
	DataDir              string    `json:"data_dir"`
	Mode                 string    `json:"mode"`
	ModeReason           string    `json:"mode_reason,omitempty"`
	TransactionID        uint64    `json:"transaction_id"`
	BlockSize            uint64    `json:"block_size"`
	DataBlocks           uint64    `json:"data_blocks"`
	DataBlocksUsed       uint64    `json:"data_blocks_used"`
	DataBytes            uint64    `json:"data_bytes"`
	DataBytesUsed        uint64    `json:"data_bytes_used"`
	MetadataBlocks       uint64    `json:"metadata_blocks"`
	MetadataBlocksUsed   uint64    `json:"metadata_blocks_used"`
	MetadataReserve      uint64    `json:"metadata_reserve_blocks"`
	MetadataSnapshotHeld bool      `json:"metadata_snapshot_held"`
	NeedsCheck           bool      `json:"needs_check"`
	Volumes              int       `json:"volumes"`
	Devices              int       `json:"thin_devices"`
	Commits              uint64    `json:"commits"`
	Started              time.Time `json:"started"`
}

// Status reports the pool's state and space.
func (d *Daemon) Status() PoolStatus {
	st := d.st.engine.Stats()
	m := st.Metadata
	s := PoolStatus{
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
