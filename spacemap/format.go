package spacemap

import (
	"encoding/binary"
	"fmt"

	"github.com/thind-storage/thind/bm"
)

// On-disk constants of dm-space-map-common.h.
const (
	// EntriesPerBlock is the number of 2-bit counts in a bitmap block:
	// everything after its 16-byte header.
	EntriesPerBlock = (bm.BlockSize - bitmapHeaderSize) * 4
	// MaxMetadataBitmaps is the capacity of the metadata index block.
	MaxMetadataBitmaps = 255
	// MaxMetadataBlocks is the largest metadata device the format can
	// describe (DM_SM_METADATA_MAX_BLOCKS).
	MaxMetadataBlocks = MaxMetadataBitmaps * EntriesPerBlock
	// RootSize is the size of a space map root (struct disk_sm_root).
	RootSize = 32

	bitmapHeaderSize = 16
	indexEntrySize   = 16
	indexHeaderSize  = 16

	// BitmapCsumXor and IndexCsumXor are BITMAP_CSUM_XOR and
	// INDEX_CSUM_XOR of dm-space-map-common.c.
	BitmapCsumXor = 240779
	IndexCsumXor  = 160478
)

// BitmapValidator checks space map bitmap blocks.
var BitmapValidator bm.Validator = &bm.StampedValidator{TypeName: "space map bitmap", Xor: BitmapCsumXor}

// IndexValidator checks the metadata space map's index block.
var IndexValidator bm.Validator = &bm.StampedValidator{TypeName: "space map index", Xor: IndexCsumXor}

// Root is a space map's root as stored in the superblock (struct disk_sm_root).
type Root struct {
	NrBlocks     uint64
	NrAllocated  uint64
	BitmapRoot   uint64 // data: root of the index B-tree; metadata: the index block
	RefCountRoot uint64
}

// DecodeRoot reads a root from the first RootSize bytes of b.
func DecodeRoot(b []byte) (Root, error) {
	if len(b) < RootSize {
		return Root{}, fmt.Errorf("space map root: %d bytes, need %d", len(b), RootSize)
	}
	return Root{
		NrBlocks:     binary.LittleEndian.Uint64(b[0:]),
		NrAllocated:  binary.LittleEndian.Uint64(b[8:]),
		BitmapRoot:   binary.LittleEndian.Uint64(b[16:]),
		RefCountRoot: binary.LittleEndian.Uint64(b[24:]),
	}, nil
}

// Encode writes the root into the first RootSize bytes of b.
func (r Root) Encode(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], r.NrBlocks)
	binary.LittleEndian.PutUint64(b[8:], r.NrAllocated)
	binary.LittleEndian.PutUint64(b[16:], r.BitmapRoot)
	binary.LittleEndian.PutUint64(b[24:], r.RefCountRoot)
}

// IndexEntry locates one bitmap block and carries search hints
// (struct disk_index_entry). The hints are only hints: writers disagree on
// them (thin_restore 0.9.0 gets them wrong), and nothing checks them.
type IndexEntry struct {
	Blocknr        uint64
	NrFree         uint32
	NoneFreeBefore uint32
}

// DecodeIndexEntry reads an entry from 16 bytes.
func DecodeIndexEntry(b []byte) IndexEntry {
	return IndexEntry{
		Blocknr:        binary.LittleEndian.Uint64(b[0:]),
		NrFree:         binary.LittleEndian.Uint32(b[8:]),
		NoneFreeBefore: binary.LittleEndian.Uint32(b[12:]),
	}
}

// Encode writes the entry into 16 bytes.
func (e IndexEntry) Encode(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], e.Blocknr)
	binary.LittleEndian.PutUint32(b[8:], e.NrFree)
	binary.LittleEndian.PutUint32(b[12:], e.NoneFreeBefore)
}

// NrBitmaps is the number of bitmap blocks needed for nrBlocks entries.
func NrBitmaps(nrBlocks uint64) uint64 {
	return (nrBlocks + EntriesPerBlock - 1) / EntriesPerBlock
}

// DecodeMetadataIndex returns the entries of a metadata index block.
func DecodeMetadataIndex(block []byte, n uint64) ([]IndexEntry, error) {
	if n > MaxMetadataBitmaps {
		return nil, fmt.Errorf("metadata space map needs %d bitmaps, the index holds %d", n, MaxMetadataBitmaps)
	}
	entries := make([]IndexEntry, n)
	for i := range entries {
		entries[i] = DecodeIndexEntry(block[indexHeaderSize+indexEntrySize*i:])
	}
	return entries, nil
}

// EncodeMetadataIndex writes entries into a metadata index block, zeroing
// the unused ones: the inverse of DecodeMetadataIndex.
func EncodeMetadataIndex(block []byte, entries []IndexEntry) error {
	if len(entries) > MaxMetadataBitmaps {
		return fmt.Errorf("metadata space map needs %d bitmaps, the index holds %d", len(entries), MaxMetadataBitmaps)
	}
	clear(block[indexHeaderSize:])
	for i, e := range entries {
		e.Encode(block[indexHeaderSize+indexEntrySize*i:])
	}
	return nil
}
