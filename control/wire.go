package control

import "time"

// Volume is a volume on the wire.
type Volume struct {
	Name        string            `json:"name"`
	DevID       uint64            `json:"dev_id"`
	Size        uint64            `json:"size"`
	Created     time.Time         `json:"created"`
	Origin      string            `json:"origin,omitempty"`
	OriginDevID *uint64           `json:"origin_dev_id,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Description string            `json:"description,omitempty"`
	ReadOnly    bool              `json:"read_only"`
	RequireTLS  bool              `json:"require_tls"`
	// Access is the access list, grants as catalog.ParseGrant reads them
	// ("cn=alice:rw", "uid=1000:ro"); none: whoever reaches the sockets.
	Access       []string `json:"access,omitempty"`
	MappedBlocks uint64   `json:"mapped_blocks"`
	MappedBytes  uint64   `json:"mapped_bytes"`
	Connections  int      `json:"connections"`
}

// VolumeRequest creates, snapshots, resizes or updates a volume.
type VolumeRequest struct {
	Name        string             `json:"name,omitempty"`
	Size        uint64             `json:"size,omitempty"`
	Labels      *map[string]string `json:"labels,omitempty"`
	Description *string            `json:"description,omitempty"`
	ReadOnly    *bool              `json:"read_only,omitempty"`
	RequireTLS  *bool              `json:"require_tls,omitempty"`
	// Access sets the access list (an empty list removes it). A snapshot
	// without one keeps its origin's.
	Access *[]string `json:"access,omitempty"`
	// AllowShrink lets a resize make the volume smaller, dropping the
	// data past the new end.
	AllowShrink bool `json:"allow_shrink,omitempty"`
}

// ErrorBody is every error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

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
	MetadataSnapshot     uint64    `json:"metadata_snapshot,omitempty"` // its superblock copy's block
	NeedsCheck           bool      `json:"needs_check"`
	Volumes              int       `json:"volumes"`
	Devices              int       `json:"thin_devices"`
	Commits              uint64    `json:"commits"`
	Started              time.Time `json:"started"`
}

// ModeRequest asks a read-only pool back into write mode; Check runs
// the metadata checker first and clears needs_check if it passes.
type ModeRequest struct {
	Mode  string `json:"mode"`
	Check bool   `json:"check,omitempty"`
}

// ModeAnswer answers a ModeRequest: the pool's status, and the check's
// findings when one ran.
type ModeAnswer struct {
	Pool  PoolStatus `json:"pool"`
	Check string     `json:"check,omitempty"`
}

// ResizePoolRequest grows the pool's devices; 0 leaves one alone.
type ResizePoolRequest struct {
	DataSize     uint64 `json:"data_size,omitempty"`
	MetadataSize uint64 `json:"metadata_size,omitempty"`
}

// ErrorTrailer carries an error that ended a send stream after its
// first byte, when the status line has long gone: the stream itself then
// lacks its end record, which a receiver refuses anyway.
const ErrorTrailer = "X-Thind-Error"
