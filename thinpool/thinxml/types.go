package thinxml

import "math"

// Superblock is the <superblock> element: the pool-wide fields of
// struct thin_disk_superblock that thin_dump prints.
type Superblock struct {
	// UUID is printed verbatim (escaped) in the uuid attribute. thin_dump
	// 0.9.0 always prints it empty; thin_restore copies its raw bytes into
	// the 16-byte on-disk field.
	UUID string
	// Time is the pool's current time (on disk: __le32 time).
	Time uint32
	// Transaction is the pool's transaction id.
	Transaction uint64
	// Flags are the superblock flags; the parser defaults it to 0.
	Flags uint32
	// Version is the metadata format version; the parser defaults it to 1,
	// as thin_restore 0.9.0 does, when the attribute is absent.
	Version uint32
	// DataBlockSize is in 512-byte sectors.
	DataBlockSize uint32
	// NrDataBlocks is the size of the data device in blocks.
	NrDataBlocks uint64
	// MetadataSnap is the optional metadata_snap attribute (restore only;
	// thin_restore writes it to held_root verbatim). 0 means absent: the
	// writer prints the attribute only when it is non-zero, so a walker
	// that mirrors thin_dump leaves it 0.
	MetadataSnap uint64
}

// Device is the <device> element: one entry of the device-details tree.
type Device struct {
	DevID uint32
	// MappedBlocks is printed from the details tree; thin_restore ignores
	// it and recomputes it from the mappings.
	MappedBlocks uint64
	Transaction  uint64
	CreationTime uint32
	SnapTime     uint32
}

// Mapping is a run of Len consecutive virtual blocks starting at Origin,
// mapped to consecutive data blocks starting at Data, all with the same
// Time. Len is at least 1: a single mapping is a run of length 1.
//
// Data blocks are 40-bit and times 24-bit in the pool; the XML layer keeps
// the wider types and leaves range checks against the pool to its callers.
type Mapping struct {
	Origin uint64
	Data   uint64
	Len    uint64
	Time   uint32
}

// Emitter receives a metadata document as a stream of events, like
// thin-provisioning-tools' emitter. A document is
//
//	BeginSuperblock (BeginDevice Map* EndDevice)* EndSuperblock
//
// The Writer implements it to print XML; Parse drives one from XML, so a
// metadata walker can stream into a Writer and a restorer can consume Parse
// without the document ever being held in memory. An error returned from
// any method stops the producer, which returns it (wrapped).
type Emitter interface {
	BeginSuperblock(sb Superblock) error
	EndSuperblock() error
	BeginDevice(d Device) error
	EndDevice() error
	// Map receives one mapping run of the current device. Parse passes
	// runs as written in the document (single_mapping gives Len 1), in
	// document order; the Writer accepts runs of any length and coalesces
	// consecutive ones itself.
	Map(m Mapping) error
}

// invalid says why m cannot be a run in a document, or "" if it can. The
// end of a run is computed as Origin+Len-1, so a run may end at the last
// 64-bit block but not wrap around.
func (m Mapping) invalid() string {
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
