package blk

import (
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// FileOptions say how to open a backing file or device.
type FileOptions struct {
	// ReadOnly opens without write permission; writes fail with EBADF.
	ReadOnly bool
	// Direct opens with O_DIRECT, bypassing the page cache. Reads and
	// writes must then be aligned as IOAlignment reports; the dispatcher
	// rejects misaligned ones with an *AlignmentError.
	Direct bool
}

// File is a Backend on a regular file: pread/pwrite, preadv/pwritev2 for
// merged requests, fallocate for discard and write-zeroes, fdatasync for
// flush, a clone or copy_file_range for copies. The file's size is the
// device size; it is not grown by writes.
type File struct {
	fdIO
	direct             bool
	memAlign, offAlign int

	// Set once fallocate mode reports EOPNOTSUPP, so that a file system
	// without the mode costs one failed call, not one per request.
	noZeroRange atomic.Bool
	noPunch     atomic.Bool
	noClone     atomic.Bool // FICLONERANGE unsupported here
	noCopyRange atomic.Bool // copy_file_range unsupported here
}

// direct I/O alignment used when the kernel cannot report it: a page is
// enough for every Linux file system and device.
const fallbackDIOAlign = 4096

// OpenFile opens an existing regular file as a backend.
func OpenFile(path string, opt FileOptions) (*File, error) {
	fd, err := openFD(path, opt.ReadOnly, opt.Direct)
	if err != nil {
		return nil, fmt.Errorf("blk: %w", err)
	}
	f := &File{fdIO: fdIO{fd: fd, path: path}, direct: opt.Direct, memAlign: 1, offAlign: 1}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("blk: %w", f.pathErr("fstat", err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("blk: %s: not a regular file (mode %#o)", path, st.Mode)
	}
	if opt.Direct {
		f.memAlign, f.offAlign = fallbackDIOAlign, fallbackDIOAlign
		if mem, off, ok := dioAlignment(fd); ok {
			f.memAlign, f.offAlign = max(mem, 1), off
		}
	}
	return f, nil
}

// Size is the file's current length.
func (f *File) Size() (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return 0, f.pathErr("fstat", err)
	}
	return st.Size, nil
}

// IOAlignment reports the O_DIRECT alignment, or 1 and 1 for buffered I/O.
func (f *File) IOAlignment() (mem, off int) { return f.memAlign, f.offAlign }

// Discard punches a hole: the blocks go back to the file system and the
// range reads back as zeros, while the file keeps its size. File systems
// free only whole blocks and zero the partial ones at the edges.
func (f *File) Discard(off, length int64) error {
	if f.noPunch.Load() {
		return f.pathErr("fallocate punch hole", ErrNotSupported)
	}
	err := f.fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	if errors.Is(err, unix.EOPNOTSUPP) {
		f.noPunch.Store(true)
		return f.pathErr("fallocate punch hole", ErrNotSupported)
	}
	return err
}

// WriteZeroes zeroes the range with fallocate ZERO_RANGE, which keeps the
// blocks allocated (later writes do not need new space). Where that mode
// is missing it punches a hole, and where that is missing too it writes
// zeros.
func (f *File) WriteZeroes(off, length int64) error {
	if !f.noZeroRange.Load() {
		err := f.fallocate(unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, length)
		if !errors.Is(err, unix.EOPNOTSUPP) {
			return err
		}
		f.noZeroRange.Store(true)
	}
	if !f.noPunch.Load() {
		err := f.fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
		if !errors.Is(err, unix.EOPNOTSUPP) {
			return err
		}
		f.noPunch.Store(true)
	}
	return f.writeZeroesByWrite(off, length)
}

// zeroChunk bounds the buffer of the last-resort zero writer.
const zeroChunk = 1 << 20

// writeZeroesByWrite writes zeros through the normal write path. It is the
// rare fallback, so it allocates its buffer per call (aligned, in case the
// file is open with O_DIRECT; the range must then be aligned too).
func (f *File) writeZeroesByWrite(off, length int64) error {
	zeros, err := AlignedBuffer(int(min(length, zeroChunk)), max(f.memAlign, 1))
	if err != nil {
		return err
	}
	for length > 0 {
		n := min(length, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
		length -= n
	}
	return nil
}

func (f *File) fallocate(mode uint32, off, length int64) error {
	err := unix.Fallocate(f.fd, mode, off, length)
	for err == unix.EINTR {
		err = unix.Fallocate(f.fd, mode, off, length)
	}
	if err != nil {
		return f.pathErr("fallocate", err)
	}
	return nil
}

// ReadAtNoWait implements NoWaitReader for a buffered file. An O_DIRECT
// read always goes to the device, so a direct file never serves one.
func (f *File) ReadAtNoWait(p []byte, off int64) (bool, error) {
	if f.direct {
		return false, nil
	}
	return f.readNoWait(p, off)
}
