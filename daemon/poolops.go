package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/metatools"
	"github.com/thind-storage/thind/spacemap"
	"github.com/thind-storage/thind/thinpool"
)

// ErrPoolShrink refuses a pool resize to less than the pool holds.
var ErrPoolShrink = errors.New("a pool cannot shrink")

// ErrCheckFailed refuses to clear needs_check on metadata the checker
// found errors in.
var ErrCheckFailed = errors.New("the metadata check found errors")

// SetWriteMode returns a read-only pool to write mode (thind pool
// set-mode write), once what sent it there is fixed. While the metadata
// has needs_check set it is refused, as dm-thin refuses, unless check
// is set: then the metadata as committed on disk is checked first (it
// cannot change meanwhile in read-only mode), and only a clean report
// clears the flag.
func (d *Daemon) SetWriteMode(ctx context.Context, check bool) (*metatools.Report, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	e := d.st.engine
	if !check || !d.st.md.NeedsCheck() {
		if err := e.SetWriteMode(); err != nil {
			return nil, err
		}
		d.log.Warn("pool returned to write mode", "by", "request")
		return nil, nil
	}
	if e.Mode() == thinpool.ModeWrite {
		return nil, errors.New("needs_check is set on a pool in write mode: stop thind and run `thind meta check`")
	}
	r, err := d.checkOnDisk()
	if err != nil {
		return nil, err
	}
	if !r.OK() {
		d.log.Error("metadata check failed: needs_check stays set", "errors", r.Errors)
		return r, fmt.Errorf("%w (%d): stop thind and run `thind meta repair`", ErrCheckFailed, r.Errors)
	}
	if err := e.ClearNeedsCheck(ctx); err != nil {
		return r, err
	}
	d.log.Warn("metadata checked clean: needs_check cleared, pool returned to write mode")
	return r, nil
}

// checkOnDisk runs the checker over the metadata device as it is on
// disk, through a descriptor of its own.
func (d *Daemon) checkOnDisk() (*metatools.Report, error) {
	f, n, err := bm.OpenFile(d.cfg.MetadataDevice, true)
	if err != nil {
		return nil, fmt.Errorf("metadata device: %w", err)
	}
	defer f.Close()
	img, err := metatools.NewImage(f, n)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	return metatools.Check(img, metatools.CheckOptions{}), nil
}

// ResizePool grows the pool's data and metadata devices online (thind
// pool resize), as lvextend does a pool's: a regular file is made
// bigger, a block device must already be; then the engine takes the new
// space and commits. A size of 0 leaves that device alone. Writes queued
// on a full data device resume; a pool read-only for lack of metadata
// space returns to write mode.
func (d *Daemon) ResizePool(ctx context.Context, dataSize, metadataSize uint64) error {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	e := d.st.engine
	if metadataSize > 0 {
		if max := uint64(spacemap.MaxMetadataBlocks) * bm.BlockSize; metadataSize > max {
			return fmt.Errorf("--metadata-size %d: the format addresses at most %d bytes of metadata: %w", metadataSize, max, catalog.ErrInvalid)
		}
		have := e.Metadata().MetadataBlocks() * bm.BlockSize
		if err := growDevice(d.cfg.MetadataDevice, "metadata", have, metadataSize); err != nil {
			return err
		}
		if err := e.ResizeMetadata(ctx, metadataSize/bm.BlockSize); err != nil {
			return err
		}
		d.log.Info("metadata grew", "bytes", metadataSize, "blocks", e.Metadata().MetadataBlocks())
	}
	if dataSize > 0 {
		have := e.Metadata().DataBlocks() * e.BlockSize()
		if dataSize >= have {
			// Before the file grows: a pool whose data device is larger
			// than its metadata can map would not start again.
			if err := e.Metadata().CheckDataGrowth(dataSize / e.BlockSize()); err != nil {
				return err
			}
		}
		if err := growDevice(d.cfg.DataDevice, "data", have, dataSize); err != nil {
			return err
		}
		if err := e.Resize(ctx); err != nil {
			return err
		}
		d.log.Info("data grew", "bytes", dataSize, "blocks", e.Metadata().DataBlocks())
	}
	return nil
}

// growDevice makes a regular file at least size bytes, or checks that a
// block device holds them. A pool never shrinks.
func growDevice(path, what string, have, size uint64) error {
	if size < have {
		return fmt.Errorf("--%s-size %d is smaller than the pool's %d bytes: %w", what, size, have, ErrPoolShrink)
	}
	if isBlockDevice(path) {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		end, err := f.Seek(0, 2)
		if err != nil {
			return err
		}
		if uint64(end) < size {
			return fmt.Errorf("--%s-size %d: the %s device %s holds only %d bytes (grow it first, e.g. lvextend)", what, size, what, path, end)
		}
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if uint64(st.Size()) < size {
		return os.Truncate(path, int64(size))
	}
	return nil
}
