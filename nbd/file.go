package nbd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// FileOptions configure OpenFile.
type FileOptions struct {
	// ReadOnly opens the file read-only and declares the backend so.
	ReadOnly bool
}

// File is a Backend over a regular file or a block device: pread/pwrite,
// fdatasync for FLUSH and FUA, fallocate for TRIM (punch hole) and
// WRITE_ZEROES (punch hole, or zero range for NO_HOLE), posix_fadvise for
// CACHE, and SEEK_DATA/SEEK_HOLE for block status.
//
// The size is fixed when the file is opened. All connections share one
// descriptor and the kernel's page cache, and fdatasync covers writes made
// through any connection, so the backend offers multi-conn.
type File struct {
	f    *os.File
	fd   int
	size int64
	ro   bool

	// Cleared the first time the filesystem answers EOPNOTSUPP, so an
	// unsupported call is not retried on every request.
	noPunch     atomic.Bool
	noZeroRange atomic.Bool
	noSeekData  atomic.Bool
}

// OpenFile opens path as a backend. Close it after the server is done.
func OpenFile(path string, opts FileOptions) (*File, error) {
	flag := os.O_RDWR
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("file backend: %w", err)
	}
	// Seeking to the end sizes regular files and block devices alike.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file backend: size of %s: %w", path, err)
	}
	return &File{f: f, fd: int(f.Fd()), size: size, ro: opts.ReadOnly}, nil
}

// Close closes the file.
func (b *File) Close() error { return b.f.Close() }

// Size implements Backend.
func (b *File) Size() int64 { return b.size }

// Capabilities implements Backend. FUA is emulated by the server with
// Flush (fdatasync), which is what a native FUA would do here anyway.
func (b *File) Capabilities() Capabilities {
	return Capabilities{
		ReadOnly:    b.ro,
		Flush:       true,
		Trim:        true,
		Zero:        true,
		FastZero:    true,
		Cache:       true,
		BlockStatus: true,
		MultiConn:   true,
	}
}

// ReadAt implements Backend.
func (b *File) ReadAt(_ context.Context, p []byte, off int64) error {
	if _, err := b.f.ReadAt(p, off); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("file backend: read %d+%d: file shrank: %w", off, len(p), unix.EIO)
		}
		return fmt.Errorf("file backend: %w", err)
	}
	return nil
}

// WriteAt implements Backend.
func (b *File) WriteAt(_ context.Context, p []byte, off int64, _ Flags) error {
	if _, err := b.f.WriteAt(p, off); err != nil {
		return fmt.Errorf("file backend: %w", err)
	}
	return nil
}

// Flush implements Backend.
func (b *File) Flush(context.Context) error {
	if err := unix.Fdatasync(b.fd); err != nil {
		return fmt.Errorf("file backend: fdatasync: %w", err)
	}
	return nil
}

// fallocate runs one fallocate mode unless the filesystem already said it
// does not support it; ok reports whether it ran.
func (b *File) fallocate(mode uint32, off, length int64, unsupported *atomic.Bool) (ok bool, err error) {
	if unsupported.Load() {
		return false, nil
	}
	err = unix.Fallocate(b.fd, mode, off, length)
	if errors.Is(err, unix.EOPNOTSUPP) {
		unsupported.Store(true)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("file backend: fallocate %#x %d+%d: %w", mode, off, length, err)
	}
	return true, nil
}

// Trim implements Backend by punching a hole; where the filesystem cannot,
// TRIM being a hint, it does nothing.
func (b *File) Trim(_ context.Context, off, length int64, _ Flags) error {
	_, err := b.fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length, &b.noPunch)
	return err
}

// Zero implements Backend. Punching a hole or zeroing a range are metadata
// operations and count as fast; the fallback of writing zeros does not.
func (b *File) Zero(_ context.Context, off, length int64, flags Flags) error {
	if flags&FlagNoHole == 0 {
		if ok, err := b.fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length, &b.noPunch); ok || err != nil {
			return err
		}
	}
	if ok, err := b.fallocate(unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, length, &b.noZeroRange); ok || err != nil {
		return err
	}
	if flags&FlagFastZero != 0 {
		return fmt.Errorf("file backend: filesystem cannot zero %d+%d without writing: %w", off, length, ErrNotSupported)
	}
	return b.writeZeros(off, length)
}

// writeZeros is the slow path of Zero.
func (b *File) writeZeros(off, length int64) error {
	zeros := make([]byte, min(length, 1<<20))
	for length > 0 {
		n := min(length, int64(len(zeros)))
		if _, err := b.f.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("file backend: %w", err)
		}
		off, length = off+n, length-n
	}
	return nil
}

// Cache implements Backend with POSIX_FADV_WILLNEED.
func (b *File) Cache(_ context.Context, off, length int64) error {
	if err := unix.Fadvise(b.fd, off, length, unix.FADV_WILLNEED); err != nil {
		return fmt.Errorf("file backend: fadvise: %w", err)
	}
	return nil
}

// BlockStatus implements Backend with SEEK_DATA and SEEK_HOLE. Holes read
// as zeros and are unallocated. A filesystem without SEEK_DATA reports
// everything as data, which is always honest.
func (b *File) BlockStatus(_ context.Context, off, length int64, max int, dst []Extent) ([]Extent, error) {
	end := off + length
	start := len(dst)
	for off < end && len(dst)-start < max {
		data, hole, err := b.nextData(off)
		if err != nil {
			return dst, err
		}
		if data > off { // a hole first
			n := min(data, end) - off
			dst = append(dst, Extent{Length: n, Flags: ExtentHole | ExtentZero})
			off += n
			continue
		}
		n := min(hole, end) - off
		dst = append(dst, Extent{Length: n})
		off += n
	}
	return dst, nil
}

// nextData returns where the next data run at or after off starts and
// where it ends (the next hole). Past the last data both are the size.
func (b *File) nextData(off int64) (data, hole int64, err error) {
	if b.noSeekData.Load() {
		return off, b.size, nil
	}
	data, err = unix.Seek(b.fd, off, unix.SEEK_DATA)
	switch {
	case errors.Is(err, unix.ENXIO): // no data after off
		return b.size, b.size, nil
	case errors.Is(err, unix.EINVAL):
		b.noSeekData.Store(true)
		return off, b.size, nil
	case err != nil:
		return 0, 0, fmt.Errorf("file backend: SEEK_DATA %d: %w", off, err)
	}
	if data > b.size {
		data = b.size
	}
	hole, err = unix.Seek(b.fd, data, unix.SEEK_HOLE)
	if err != nil {
		return 0, 0, fmt.Errorf("file backend: SEEK_HOLE %d: %w", data, err)
	}
	return data, min(hole, b.size), nil
}
