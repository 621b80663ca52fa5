package bm

import (
	"encoding/binary"
	"hash/crc32"
)

// BlockSize is the size of every metadata block (DM_SM_METADATA_BLOCK_SIZE).
const BlockSize = 4096

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is dm_bm_checksum: CRC-32C with an initial register of all ones
// and no final inversion, XORed with a per-block-type constant. Go's crc32
// applies the final inversion, so it is undone here.
func Checksum(data []byte, xor uint32) uint32 {
	return ^crc32.Checksum(data, castagnoli) ^ xor
}

// Every checksummed block of the dm persistent-data format starts with the
// same 16 bytes: le32 checksum over bytes 4..4095, a le32 the block type
// owns, and le64 self-location.
const (
	csumOffset     = 0
	blocknrOffset  = 8
	checksumCovers = 4
)

// StoredChecksum returns the checksum field of a block.
func StoredChecksum(data []byte) uint32 {
	return binary.LittleEndian.Uint32(data[csumOffset:])
}

// StoredLocation returns the self-location field of a block.
func StoredLocation(data []byte) uint64 {
	return binary.LittleEndian.Uint64(data[blocknrOffset:])
}

// ComputeChecksum returns the checksum a block's content should carry.
func ComputeChecksum(data []byte, xor uint32) uint32 {
	return Checksum(data[checksumCovers:BlockSize], xor)
}
