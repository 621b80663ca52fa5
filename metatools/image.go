package metatools

import (
	"errors"
	"fmt"
	"os"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/devlock"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/tm"
)

// Image is a metadata device opened read-only for the offline tools.
type Image struct {
	BM       *bm.Manager
	TM       *tm.Manager
	NrBlocks uint64 // size of the device in blocks
	file     *os.File
	lock     *devlock.Lock      // a reader's lock, keeping writers out
	live     *devlock.HeldError // who holds a live pool, nil if nobody
}

// ErrTooSmall is returned for a metadata device smaller than one block.
var ErrTooSmall = errors.New("metadata device is smaller than one block")

// ErrLive is wrapped by a LiveError.
var ErrLive = errors.New("the metadata of a pool in use changes under a reader")

// LiveError refuses to read the metadata of a pool in use (a running
// thind, or Linux's dm-thin) other than through its held metadata
// snapshot, which is the only part that does not change.
type LiveError struct{ Held *devlock.HeldError }

func (e *LiveError) Error() string {
	return fmt.Sprintf("%v: %v; stop the pool first, or read its held metadata snapshot with -m", e.Held, ErrLive)
}

func (e *LiveError) Unwrap() []error { return []error{ErrLive, e.Held} }

// OpenImage opens a metadata file or block device read-only for a tool
// that reads the pool's current metadata. It holds a reader's lock while
// open, so no daemon starts writing meanwhile, and refuses a pool in use
// with a *LiveError.
func OpenImage(path string) (*Image, error) {
	img, err := openImage(path)
	if err == nil && img.live != nil {
		err = &LiveError{Held: img.live}
		img.Close()
		img = nil
	}
	return img, err
}

// OpenLiveImage opens a metadata device that may belong to a pool in use,
// for a tool that reads only its held metadata snapshot (thin_dump -m):
// the snapshot's blocks do not change while it is held. Tools check with
// ReadableAs.
func OpenLiveImage(path string) (*Image, error) { return openImage(path) }

func openImage(path string) (*Image, error) {
	lock, err := devlock.Shared(path)
	var held *devlock.HeldError
	switch {
	case errors.As(err, &held):
	case err != nil:
		return nil, err
	}
	f, n, err := bm.OpenFile(path, true)
	if err != nil {
		lock.Close()
		return nil, err
	}
	img, err := NewImage(f, n)
	if err != nil {
		f.Close()
		lock.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	img.file, img.lock, img.live = f, lock, held
	return img, nil
}

// ReadableAs returns nil if a tool may read img: any image when it reads
// the held metadata snapshot, only an image of a pool not in use
// otherwise.
func (img *Image) ReadableAs(metadataSnap bool) error {
	if img.live != nil && !metadataSnap {
		return &LiveError{Held: img.live}
	}
	return nil
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
	var errs []error
	if img.file != nil {
		errs = append(errs, img.file.Close())
		img.file = nil
	}
	errs = append(errs, img.lock.Close())
	img.lock = nil
	return errors.Join(errs...)
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
