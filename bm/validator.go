package bm

import "encoding/binary"

// A Validator knows one block type: Prepare stamps a block just before it is
// written, Check verifies it just after it is read (dm_block_validator).
type Validator interface {
	// Name identifies the block type in errors.
	Name() string
	// Prepare sets the self-location and checksum of data, a block about
	// to be written at location.
	Prepare(data []byte, location uint64)
	// Check verifies data read from location.
	Check(data []byte, location uint64) error
}

// StampedValidator is the scheme every dm-thin block type shares: the
// le64 at byte 8 holds the block's own location, and the le32 at byte 0 a
// checksum of bytes 4..4095 XORed with a per-type constant. Extra, when
// set, runs after both pass (for example the superblock's magic).
type StampedValidator struct {
	TypeName string
	Xor      uint32
	Extra    func(data []byte, location uint64) error
}

// Name implements Validator.
func (v *StampedValidator) Name() string { return v.TypeName }

// Prepare implements Validator.
func (v *StampedValidator) Prepare(data []byte, location uint64) {
	binary.LittleEndian.PutUint64(data[blocknrOffset:], location)
	binary.LittleEndian.PutUint32(data[csumOffset:], ComputeChecksum(data, v.Xor))
}

// Check implements Validator. The location is checked first, as the kernel
// does: a block read from the wrong place is a different fault from a torn
// or bit-rotted one.
func (v *StampedValidator) Check(data []byte, location uint64) error {
	if got := StoredLocation(data); got != location {
		return &LocationError{Block: location, Validator: v.TypeName, Got: got}
	}
	want, got := ComputeChecksum(data, v.Xor), StoredChecksum(data)
	if want != got {
		return &ChecksumError{Block: location, Validator: v.TypeName, Want: want, Got: got}
	}
	if v.Extra != nil {
		return v.Extra(data, location)
	}
	return nil
}

// NoValidator reads and writes blocks as they are. Tools use it to look at
// damaged blocks.
var NoValidator Validator = noValidator{}

type noValidator struct{}

func (noValidator) Name() string               { return "raw" }
func (noValidator) Prepare([]byte, uint64)     {}
func (noValidator) Check([]byte, uint64) error { return nil }
