// Package metastream is the stream in which thin-pool metadata travels
// between the offline tools: a superblock, then each device with its
// mapping runs, as thin-provisioning-tools' emitter interface carries it.
//
// Producers walk metadata (the dumper walks a pool, the XML parser reads a
// document, repair walks what it can salvage) and consumers build something
// from it (the XML writer prints, the restorer writes a pool). The stream
// lives apart from both so that repair and restore, which write no XML,
// depend on the stream and not on the XML package. A document is
//
//	BeginSuperblock (BeginDevice Map* EndDevice)* EndSuperblock
//
// and nothing in it is held in memory by either side.
package metastream

import "math"

// Superblock carries the pool-wide fields of struct thin_disk_superblock
// that thin_dump prints.
type Superblock struct {
	// UUID is carried verbatim. thin_dump 0.9.0 always prints it empty;
	// thin_restore copies its raw bytes into the 16-byte on-disk field.
	UUID string
	// Time is the pool's current time (on disk: __le32 time).
	Time uint32
	// Transaction is the pool's transaction id.
	Transaction uint64
	// Flags are the superblock flags.
	Flags uint32
	// Version is the metadata format version.
	Version uint32
	// DataBlockSize is in 512-byte sectors.
	DataBlockSize uint32
	// NrDataBlocks is the size of the data device in blocks.
	NrDataBlocks uint64
	// MetadataSnap is the held metadata snapshot's root, 0 for none.
	// thin_dump never prints it; thin_restore writes it to held_root
	// verbatim.
	MetadataSnap uint64
}

// Device is one entry of the device-details tree.
type Device struct {
	DevID uint32
	// MappedBlocks comes from the details tree; a restorer recomputes it
	// from the mappings, as thin_restore does.
	MappedBlocks uint64
	Transaction  uint64
	CreationTime uint32
	SnapTime     uint32
}

// Mapping is a run of Len consecutive virtual blocks starting at Origin,
// mapped to consecutive data blocks starting at Data, all with the same
// Time. Len is at least 1: a single mapping is a run of length 1.
//
// Data blocks are 40-bit and times 24-bit in the pool; the stream keeps the
// wider types and leaves range checks against the pool to its consumers.
type Mapping struct {
	Origin uint64
	Data   uint64
	Len    uint64
	Time   uint32
}

// Emitter receives a metadata stream. An error returned from any method
// stops the producer, which returns it (wrapped).
type Emitter interface {
	BeginSuperblock(sb Superblock) error
	EndSuperblock() error
	BeginDevice(d Device) error
	EndDevice() error
	// Map receives one mapping run of the current device. Producers may
	// pass runs of any length in any order; consumers that need order or
	// coalescing do it themselves.
	Map(m Mapping) error
}

// Invalid says why m cannot be a run, or "" if it can. The end of a run is
// Origin+Len-1, so a run may end at the last 64-bit block but not wrap.
func (m Mapping) Invalid() string {
	switch {
	case m.Len == 0:
		return "length 0"
	case m.Len-1 > math.MaxUint64-m.Origin:
		return "origin + length overflows 64 bits"
	case m.Len-1 > math.MaxUint64-m.Data:
		return "data block + length overflows 64 bits"
	}
	return ""
}
