package daemon

import (
	"errors"
	"fmt"
	"os"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/thinpool"
)

// storage is the pool's metadata and engine over its two devices.
type storage struct {
	metaFile *os.File
	md       *thinmeta.Pool
	engine   *thinpool.Pool
	fresh    bool // formatted by this start
}

func isBlockDevice(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode()&os.ModeDevice != 0
}

// ensureFile creates a sparse file of size bytes if path does not exist,
// and grows a regular file to at least grow bytes.
func ensureFile(path string, size uint64, grow bool) error {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if err := f.Truncate(int64(size)); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return nil // a block device has the size it has
	}
	if uint64(st.Size()) < size && grow {
		return os.Truncate(path, int64(size))
	}
	return nil
}

func openStorage(c *Config) (_ *storage, err error) {
	if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
		return nil, err
	}
	if err := thinmeta.CheckDataBlockSize(c.BlockSize); err != nil {
		return nil, fmt.Errorf("--block-size: %w", err)
	}
	if err := ensureFile(c.MetadataDevice, c.MetadataSize, c.MetadataSizeSet); err != nil {
		return nil, fmt.Errorf("metadata device: %w", err)
	}
	if err := ensureFile(c.DataDevice, c.DataSize, c.DataSizeSet); err != nil {
		return nil, fmt.Errorf("data device: %w", err)
	}
	mf, nblocks, err := bm.OpenFile(c.MetadataDevice, false)
	if err != nil {
		return nil, fmt.Errorf("metadata device: %w", err)
	}
	s := &storage{metaFile: mf}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	var meta bm.Device = mf
	if c.WrapMetadata != nil {
		meta = c.WrapMetadata(mf)
	}
	formatted, err := thinmeta.IsFormatted(meta)
	if err != nil {
		return nil, fmt.Errorf("metadata device: %w", err)
	}
	sectors := uint32(c.BlockSize / 512)
	opts := thinmeta.Options{CacheBytes: c.MetadataCacheBytes}
	if !formatted {
		if s.md, err = thinmeta.Create(meta, nblocks, sectors, 0, opts); err != nil {
			return nil, fmt.Errorf("formatting the metadata device: %w", err)
		}
		s.fresh = true
	} else {
		if c.BlockSizeSet {
			opts.DataBlockSize = sectors
		}
		if s.md, err = thinmeta.Open(meta, nblocks, opts); err != nil {
			return nil, fmt.Errorf("opening the metadata: %w", err)
		}
		if c.MetadataSizeSet && c.MetadataSize/bm.BlockSize != nblocks {
			return nil, fmt.Errorf("--metadata-size %d differs from the metadata device's %d bytes", c.MetadataSize, nblocks*bm.BlockSize)
		}
		if have := s.md.MetadataBlocks(); nblocks > have {
			// The device grew: use the new space. Commit at once, as
			// dm-thin's pool_preresume does after a resize: the new
			// blocks are free only from the next transaction, and until
			// then the pool would report its old size as all used.
			if err := s.md.ResizeMetadata(nblocks); err != nil {
				return nil, err
			}
			if err := s.md.Commit(); err != nil {
				return nil, err
			}
		}
	}
	var data blk.Backend
	if isBlockDevice(c.DataDevice) {
		data, err = blk.OpenBlockDevice(c.DataDevice, blk.FileOptions{})
	} else {
		data, err = blk.OpenFile(c.DataDevice, blk.FileOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("data device: %w", err)
	}
	if c.WrapData != nil {
		data = c.WrapData(data)
	}
	if c.DataSizeSet {
		size, err := data.Size()
		if err != nil {
			data.Close()
			return nil, err
		}
		if uint64(size) < c.DataSize {
			data.Close()
			return nil, fmt.Errorf("--data-size %d is larger than the data device (%d bytes)", c.DataSize, size)
		}
		if have := s.md.DataBlocks() * c.BlockSize; formatted && c.DataSize < have {
			data.Close()
			return nil, fmt.Errorf("--data-size %d is smaller than the pool (%d bytes): a pool cannot shrink", c.DataSize, have)
		}
	}
	if s.engine, err = thinpool.Open(s.md, data, c.Engine); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *storage) close() error {
	var errs []error
	if s.engine != nil {
		errs = append(errs, s.engine.Close())
	}
	if s.md != nil {
		errs = append(errs, s.md.Close())
	}
	if s.metaFile != nil {
		errs = append(errs, s.metaFile.Close())
	}
	return errors.Join(errs...)
}
