package metatools

import (
	"errors"
	"fmt"
	"os"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/tm"
)

// Image is a metadata device opened read-only for the offline tools.
type Image struct {
	BM       *bm.Manager
	TM       *tm.Manager
	NrBlocks uint64 // size of the device in blocks
	file     *os.File
}

// ErrTooSmall is returned for a metadata device smaller than one block.
var ErrTooSmall = errors.New("metadata device is smaller than one block")

// OpenImage opens a metadata file or block device read-only.
func OpenImage(path string) (*Image, error) {
	f, n, err := bm.OpenFile(path, true)
	if err != nil {
		return nil, err
	}
	img, err := NewImage(f, n)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	img.file = f
	return img, nil
}

// NewImage wraps a device of nrBlocks blocks.
func NewImage(dev bm.Device, nrBlocks uint64) (*Image, error) {
	if nrBlocks == 0 {
		return nil, ErrTooSmall
	}
	b := bm.New(dev, nrBlocks, bm.Options{ReadOnly: true, CacheBytes: 256 << 20})
	return &Image{BM: b, TM: tm.New(b, nil), NrBlocks: nrBlocks}, nil
}

// Close releases the image.
func (img *Image) Close() error {
	if img.file != nil {
		return img.file.Close()
	}
	return nil
}

// Superblock reads the superblock at loc (0, or a metadata snapshot's
// copy), checked with the kernel's rules (location, checksum, magic).
func (img *Image) Superblock(loc uint64) (thinmeta.Superblock, error) {
	blk, err := img.BM.ReadLock(loc, thinmeta.SuperblockValidator)
	if err != nil {
		return thinmeta.Superblock{}, err
	}
	defer img.BM.Unlock(blk)
	return thinmeta.DecodeSuperblock(blk.Data()), nil
}

// RawBlock returns a copy of block b without checking it.
func (img *Image) RawBlock(b uint64) ([]byte, error) {
	blk, err := img.BM.ReadLock(b, bm.NoValidator)
	if err != nil {
		return nil, err
	}
	defer img.BM.Unlock(blk)
	return append([]byte(nil), blk.Data()...), nil
}
