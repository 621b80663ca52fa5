package btree

import "encoding/binary"

func putLE64(b []byte, v uint64) { binary.LittleEndian.PutUint64(b, v) }

// LE64 encodes v as an 8-byte little-endian value.
func LE64(v uint64) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return b[:]
}
