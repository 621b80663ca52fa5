package discard

import "fmt"

const (
	// SectorSize is the unit of sector-addressed requests.
	SectorSize = 512
	// MinBlockSize is the smallest data block dm-thin allows (128 sectors);
	// every block size is a multiple of it, not necessarily a power of two.
	MinBlockSize = 128 * SectorSize
	// MaxBlockSize is the largest data block dm-thin allows (2097152
	// sectors).
	MaxBlockSize = 1 << 30
	// MaxDevSize bounds device sizes so that rounding any offset up to a
	// block boundary cannot overflow 64 bits.
	MaxDevSize = 1 << 63
)

// Geometry is the block layout of one thin device: its data block size and
// its size, both in bytes. The zero Geometry is not valid; use NewGeometry.
type Geometry struct {
	blockSize uint64
	devSize   uint64
}

// NewGeometry checks a block size (a multiple of MinBlockSize up to
// MaxBlockSize) and a device size (a whole number of sectors up to
// MaxDevSize; it need not be a whole number of blocks).
func NewGeometry(blockSize, devSize uint64) (Geometry, error) {
	if err := checkBlockSize(blockSize); err != nil {
		return Geometry{}, err
	}
	switch {
	case devSize%SectorSize != 0:
		return Geometry{}, &SizeError{devSize, fmt.Sprintf("not a multiple of %d", SectorSize), ErrDevSize}
	case devSize > MaxDevSize:
		return Geometry{}, &SizeError{devSize, fmt.Sprintf("larger than %d", uint64(MaxDevSize)), ErrDevSize}
	}
	return Geometry{blockSize: blockSize, devSize: devSize}, nil
}

func checkBlockSize(bs uint64) error {
	switch {
	case bs%SectorSize != 0:
		return &SizeError{bs, fmt.Sprintf("not a multiple of the %d-byte sector", SectorSize), ErrBlockSize}
	case bs < MinBlockSize || bs%MinBlockSize != 0:
		return &SizeError{bs, fmt.Sprintf("not a multiple of %d", MinBlockSize), ErrBlockSize}
	case bs > MaxBlockSize:
		return &SizeError{bs, fmt.Sprintf("larger than %d", MaxBlockSize), ErrBlockSize}
	}
	return nil
}

// BlockSize is the data block size in bytes.
func (g Geometry) BlockSize() uint64 { return g.blockSize }

// DevSize is the device size in bytes.
func (g Geometry) DevSize() uint64 { return g.devSize }

// Blocks is the number of blocks the device spans, counting a partial last
// block.
func (g Geometry) Blocks() uint64 { return divUp(g.devSize, g.blockSize) }

// Block is the block holding byte off.
func (g Geometry) Block(off uint64) uint64 { return off / g.blockSize }

func divUp(a, b uint64) uint64 { return a/b + min(a%b, 1) }
