package thinmeta

import "fmt"

// Data block sizes dm-thin accepts, in 512-byte sectors: 64 KiB to 1 GiB in
// multiples of 64 KiB, not necessarily powers of two
// (DATA_DEV_BLOCK_SIZE_MIN_SECTORS and DATA_DEV_BLOCK_SIZE_MAX_SECTORS,
// checked by pool_ctr in drivers/md/dm-thin.c). The superblock's
// data_block_size holds one of them.
const (
	MinDataBlockSectors = 128
	MaxDataBlockSectors = 2097152
	sectorSize          = 512
)

// DataBlockSizeError reports a data block size dm-thin does not accept.
type DataBlockSizeError struct {
	Bytes uint64
}

func (e *DataBlockSizeError) Error() string {
	size := fmt.Sprintf("%d bytes", e.Bytes)
	if e.Bytes%sectorSize == 0 {
		size = fmt.Sprintf("%d sectors (%d bytes)", e.Bytes/sectorSize, e.Bytes)
	}
	return fmt.Sprintf("data block size of %s: must be a multiple of %d KiB from %d KiB to %d GiB",
		size, MinDataBlockSectors*sectorSize>>10, MinDataBlockSectors*sectorSize>>10, MaxDataBlockSectors*sectorSize>>30)
}

// CheckDataBlockSize returns a *DataBlockSizeError unless a data block of
// the given size in bytes is one dm-thin accepts. It is the one statement
// of the rule: the daemon's flags, Create, and the offline tools (check,
// restore, repair) all ask it; callers holding sectors multiply by 512.
// The discard arithmetic takes sizes already checked here.
func CheckDataBlockSize(bytes uint64) error {
	const min, max = MinDataBlockSectors * sectorSize, MaxDataBlockSectors * sectorSize
	if bytes < min || bytes > max || bytes%min != 0 {
		return &DataBlockSizeError{Bytes: bytes}
	}
	return nil
}
