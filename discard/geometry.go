package discard

import "fmt"

const (
	// SectorSize is the unit device sizes come in.
	SectorSize = 512
	// MaxDevSize bounds device sizes so that rounding any offset up to a
	// block boundary cannot overflow 64 bits, whatever the block size.
	MaxDevSize = 1 << 63
)

// Geometry is the block layout of one thin device: its data block size and
// its size, both in bytes. The zero Geometry is not valid; use NewGeometry.
type Geometry struct {
	blockSize uint64
	devSize   uint64
}

// NewGeometry takes the pool's data block size and a device size (a whole
// number of sectors up to MaxDevSize; it need not be a whole number of
// blocks). Which block sizes a pool may have is the metadata format's rule
// (thinmeta.CheckDataBlockSize), checked when the pool is created or
// opened; the arithmetic here works for any size but zero, so zero is all
// it refuses.
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
	if bs == 0 {
		return &SizeError{bs, "a block must hold at least one byte", ErrBlockSize}
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
