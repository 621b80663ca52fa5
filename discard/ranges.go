package discard

import "fmt"

// BlockRange is the half-open range of blocks [Begin, End).
type BlockRange struct {
	Begin, End uint64
}

// Len is the number of blocks in r.
func (r BlockRange) Len() uint64 { return r.End - r.Begin }

// Empty reports whether r has no blocks.
func (r BlockRange) Empty() bool { return r.End <= r.Begin }

func (r BlockRange) String() string { return fmt.Sprintf("[%d,%d)", r.Begin, r.End) }

// Bytes converts r to the bytes its blocks occupy with the given block
// size, for passing data extents down to the backing store.
func (r BlockRange) Bytes(blockSize uint64) (ByteRange, error) {
	if err := checkBlockSize(blockSize); err != nil {
		return ByteRange{}, err
	}
	return r.bytes(blockSize)
}

// bytes is Bytes for a block size already checked.
func (r BlockRange) bytes(blockSize uint64) (ByteRange, error) {
	if r.End > maxUint64/blockSize {
		return ByteRange{}, fmt.Errorf("discard: blocks %v of %d bytes: %w", r, blockSize, ErrOverflow)
	}
	return ByteRange{Off: r.Begin * blockSize, Len: r.Len() * blockSize}, nil
}

// ByteRange is the half-open byte range [Off, Off+Len).
type ByteRange struct {
	Off, Len uint64
}

// End is the first byte after r.
func (r ByteRange) End() uint64 { return r.Off + r.Len }

// Empty reports whether r has no bytes.
func (r ByteRange) Empty() bool { return r.Len == 0 }

func (r ByteRange) String() string { return fmt.Sprintf("[%d,%d)", r.Off, r.End()) }

const maxUint64 = 1<<64 - 1
