package bm

import (
	"fmt"
	"io"
	"os"
)

// Device is what the block manager runs on: a regular file, a block device
// or a MemDevice. Sync must not return before every completed write is
// durable.
type Device interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// OpenFile opens a metadata file or block device and returns it with its
// size in whole blocks.
func OpenFile(path string, readOnly bool) (*os.File, uint64, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, 0, err
	}
	// Seeking to the end gives the size of block devices too, where Stat
	// reports zero.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: size: %w", path, err)
	}
	return f, uint64(size) / BlockSize, nil
}
