package blk

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Holes lists the file's holes in [off, off+length) with lseek SEEK_DATA
// and SEEK_HOLE. File systems without hole reporting describe the whole
// file as data, which is safe: nothing is then taken for a hole.
func (f *File) Holes(off, length int64, fn func(off, length int64) error) error {
	size, err := f.Size()
	if err != nil {
		return err
	}
	end := min(off+length, size)
	for pos := off; pos < end; {
		data, err := unix.Seek(f.fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			data = end // no data after pos: the rest is a hole
		} else if err != nil {
			return f.pathErr("lseek SEEK_DATA", err)
		}
		data = min(data, end)
		if data > pos {
			if err := fn(pos, data-pos); err != nil {
				return err
			}
		}
		if data >= end {
			return nil
		}
		hole, err := unix.Seek(f.fd, data, unix.SEEK_HOLE)
		if err != nil {
			return f.pathErr("lseek SEEK_HOLE", err)
		}
		if hole <= data {
			return fmt.Errorf("blk: %s: SEEK_HOLE from %d went back to %d", f.path, data, hole)
		}
		pos = hole
	}
	return nil
}

var _ HoleBackend = (*File)(nil)

// ErrNoHoles is returned by Dispatcher.Holes when the backend cannot tell
// holes from data (a block device, most test backends).
var ErrNoHoles = errors.New("blk: the backend does not report holes")

// Holes lists the backend's holes in [off, off+length), or returns
// ErrNoHoles when it cannot tell them.
func (d *Dispatcher) Holes(off, length int64, fn func(off, length int64) error) error {
	hb, ok := d.be.(HoleBackend)
	if !ok {
		return ErrNoHoles
	}
	return hb.Holes(off, length, fn)
}
