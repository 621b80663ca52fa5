package thinmeta

import (
	"encoding/binary"
	"fmt"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/spacemap"
)

// Superblock layout (struct thin_disk_superblock, dm-thin-metadata.c). It
// fits in one 512-byte sector, so its write is atomic.
const (
	SuperblockLocation = 0
	SuperblockMagic    = 27022010
	SuperblockCsumXor  = 160774
	// Version is what Linux writes (THIN_VERSION); version 1 lacks only
	// the needs_check flag.
	Version = 2
	// FlagNeedsCheck asks for thin_check before the pool is used again.
	FlagNeedsCheck = 1
	// MetadataBlockSectors is the metadata block size in sectors.
	MetadataBlockSectors = bm.BlockSize >> 9

	offFlags           = 4
	offBlocknr         = 8
	offUUID            = 16
	offMagic           = 32
	offVersion         = 40
	offTime            = 44
	offTransID         = 48
	offHeldRoot        = 56
	offDataSMRoot      = 64
	offMetadataSMRoot  = 192
	offMappingRoot     = 320
	offDetailsRoot     = 328
	offDataBlockSize   = 336
	offMetaBlockSize   = 340
	offMetadataBlocks  = 344
	offCompatFlags     = 352
	offCompatROFlags   = 356
	offIncompatFlags   = 360
	superblockUsedSize = 364
	smRootAreaSize     = 128
)

// MaxDevID is the largest thin device id dm-thin accepts (24 bits).
const MaxDevID = 1<<24 - 1

// Superblock is the decoded superblock.
type Superblock struct {
	Flags             uint32
	Blocknr           uint64
	UUID              [16]byte
	Magic             uint64
	Version           uint32
	Time              uint32
	TransactionID     uint64
	HeldRoot          uint64
	DataSMRoot        [smRootAreaSize]byte
	MetadataSMRoot    [smRootAreaSize]byte
	DataMappingRoot   uint64
	DeviceDetailsRoot uint64
	DataBlockSize     uint32 // sectors
	MetadataBlockSize uint32 // sectors
	MetadataNrBlocks  uint64
	CompatFlags       uint32
	CompatROFlags     uint32
	IncompatFlags     uint32
}

// DecodeSuperblock decodes a superblock block. It checks nothing: see
// SuperblockValidator.
func DecodeSuperblock(b []byte) Superblock {
	le := binary.LittleEndian
	var s Superblock
	s.Flags = le.Uint32(b[offFlags:])
	s.Blocknr = le.Uint64(b[offBlocknr:])
	copy(s.UUID[:], b[offUUID:])
	s.Magic = le.Uint64(b[offMagic:])
	s.Version = le.Uint32(b[offVersion:])
	s.Time = le.Uint32(b[offTime:])
	s.TransactionID = le.Uint64(b[offTransID:])
	s.HeldRoot = le.Uint64(b[offHeldRoot:])
	copy(s.DataSMRoot[:], b[offDataSMRoot:])
	copy(s.MetadataSMRoot[:], b[offMetadataSMRoot:])
	s.DataMappingRoot = le.Uint64(b[offMappingRoot:])
	s.DeviceDetailsRoot = le.Uint64(b[offDetailsRoot:])
	s.DataBlockSize = le.Uint32(b[offDataBlockSize:])
	s.MetadataBlockSize = le.Uint32(b[offMetaBlockSize:])
	s.MetadataNrBlocks = le.Uint64(b[offMetadataBlocks:])
	s.CompatFlags = le.Uint32(b[offCompatFlags:])
	s.CompatROFlags = le.Uint32(b[offCompatROFlags:])
	s.IncompatFlags = le.Uint32(b[offIncompatFlags:])
	return s
}

// Encode writes every field into b (the checksum is left to the
// validator).
func (s *Superblock) Encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[offFlags:], s.Flags)
	le.PutUint64(b[offBlocknr:], s.Blocknr)
	copy(b[offUUID:offUUID+16], s.UUID[:])
	le.PutUint64(b[offMagic:], s.Magic)
	le.PutUint32(b[offVersion:], s.Version)
	le.PutUint32(b[offTime:], s.Time)
	le.PutUint64(b[offTransID:], s.TransactionID)
	le.PutUint64(b[offHeldRoot:], s.HeldRoot)
	copy(b[offDataSMRoot:offDataSMRoot+smRootAreaSize], s.DataSMRoot[:])
	copy(b[offMetadataSMRoot:offMetadataSMRoot+smRootAreaSize], s.MetadataSMRoot[:])
	le.PutUint64(b[offMappingRoot:], s.DataMappingRoot)
	le.PutUint64(b[offDetailsRoot:], s.DeviceDetailsRoot)
	le.PutUint32(b[offDataBlockSize:], s.DataBlockSize)
	le.PutUint32(b[offMetaBlockSize:], s.MetadataBlockSize)
	le.PutUint64(b[offMetadataBlocks:], s.MetadataNrBlocks)
	le.PutUint32(b[offCompatFlags:], s.CompatFlags)
	le.PutUint32(b[offCompatROFlags:], s.CompatROFlags)
	le.PutUint32(b[offIncompatFlags:], s.IncompatFlags)
}

// DataSpaceMapRoot decodes the data space map root.
func (s *Superblock) DataSpaceMapRoot() spacemap.Root {
	r, _ := spacemap.DecodeRoot(s.DataSMRoot[:])
	return r
}

// MetadataSpaceMapRoot decodes the metadata space map root.
func (s *Superblock) MetadataSpaceMapRoot() spacemap.Root {
	r, _ := spacemap.DecodeRoot(s.MetadataSMRoot[:])
	return r
}

// SuperblockValidator checks the location, checksum and magic, as the
// kernel's sb_check does (thin_check 0.9.0 checks only the checksum).
var SuperblockValidator bm.Validator = &bm.StampedValidator{
	TypeName: "superblock",
	Xor:      SuperblockCsumXor,
	Extra: func(data []byte, loc uint64) error {
		if m := binary.LittleEndian.Uint64(data[offMagic:]); m != SuperblockMagic {
			return &bm.FormatError{Block: loc, Validator: "superblock", Reason: fmt.Sprintf("magic %d, wanted %d", m, SuperblockMagic)}
		}
		return nil
	},
}
