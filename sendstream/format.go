package sendstream

import (
	"errors"
	"hash/crc32"
)

// Magic opens every stream; its last byte is the format version.
var Magic = [8]byte{'T', 'H', 'I', 'N', 'D', 'S', 'S', Version}

// Version is the one format version this package writes and reads.
const Version = 1

// Record kinds, one byte on the wire.
const (
	KindHeader = 'H' // JSON Header, first after the magic
	KindData   = 'D' // offset u64, then the bytes
	KindZero   = 'Z' // offset u64, length u64: reads as zeroes (unmapped)
	KindEnd    = 'E' // End, last
)

// Limits the decoder holds every stream to.
const (
	MaxHeaderLen = 4096    // a header's JSON
	MaxDataLen   = 4 << 20 // bytes of one data record
	maxPayload   = 8 + MaxDataLen
	frameLen     = 1 + 4   // kind, payload length (u32 LE)
	crcLen       = 4       // crc32c of kind, length and payload
	endLen       = 4*8 + 4 // the End fields
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header says what a stream holds. IDs are the sender's identities,
// which a receiver records: SnapshotID names the snapshot the stream
// recreates, BaseID (empty in a full stream) the snapshot it applies on.
type Header struct {
	Pool       string `json:"pool"`
	Volume     string `json:"volume"` // the snapshot's origin, as the sender named it
	Snapshot   string `json:"snapshot"`
	SnapshotID string `json:"snapshot_id"`
	Base       string `json:"base,omitempty"`
	BaseID     string `json:"base_id,omitempty"`
	BlockSize  uint64 `json:"block_size"` // the sender's data block size
	Size       uint64 `json:"size"`       // the snapshot's virtual size in bytes
	Start      uint64 `json:"start"`      // records start here (a resumed stream)
}

// Incremental reports whether the stream applies on a base snapshot.
func (h *Header) Incremental() bool { return h.BaseID != "" }

// End closes a stream: what it held, and the crc32c of every byte before
// the end record.
type End struct {
	DataRecords uint64
	ZeroRecords uint64
	DataBytes   uint64
	ZeroBytes   uint64
	StreamCRC   uint32
}

// Errors the decoder wraps; errors.Is tells them apart.
var (
	ErrCorrupt   = errors.New("corrupt send stream")
	ErrTruncated = errors.New("truncated send stream")
	ErrVersion   = errors.New("unsupported send stream version")
)
