package blk

import (
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fdIO is positional I/O on a raw file descriptor, shared by File and
// BlockDevice. It bypasses os.File on purpose: os.File adds a reference
// count and lock per call for the poller, which regular files and block
// devices do not use, and it has no preadv/pwritev. The dispatcher never
// calls a backend after Close, which is what os.File's reference count
// would otherwise guard.
type fdIO struct {
	fd   int
	path string
}

func (f *fdIO) pathErr(op string, err error) error {
	return &os.PathError{Op: op, Path: f.path, Err: err}
}

// ReadAt implements io.ReaderAt with pread(2).
func (f *fdIO) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Pread(f.fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, f.pathErr("pread", err)
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

// WriteAt implements io.WriterAt with pwrite(2).
func (f *fdIO) WriteAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Pwrite(f.fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, f.pathErr("pwrite", err)
		}
		if m == 0 {
			return n, f.pathErr("pwrite", io.ErrShortWrite)
		}
		n += m
	}
	return n, nil
}

// readNoWait is preadv2(2) of p with RWF_NOWAIT (NoWaitReader): the kernel
// copies what the page cache holds and refuses with EAGAIN rather than
// start a read. The raw call keeps its one iovec on the stack, where
// unix.Preadv2 would allocate a slice of them per call.
func (f *fdIO) readNoWait(p []byte, off int64) (bool, error) {
	if len(p) == 0 {
		return true, nil
	}
	iov := unix.Iovec{Base: &p[0]}
	iov.SetLen(len(p))
	n, _, errno := unix.Syscall6(unix.SYS_PREADV2, uintptr(f.fd), uintptr(unsafe.Pointer(&iov)), 1, uintptr(off), 0, unix.RWF_NOWAIT)
	switch errno {
	case 0:
		return int(n) == len(p), nil
	case unix.EAGAIN, unix.EINTR, unix.EOPNOTSUPP, unix.ENOSYS, unix.EINVAL:
		// Not cached, interrupted, or a kernel or file system without
		// the flag: the caller reads the ordinary way.
		return false, nil
	}
	return false, f.pathErr("preadv2", errno)
}

// ReadvAt reads into bufs with one preadv(2), finishing a short transfer
// (a signal, or the file shrinking) buffer by buffer.
func (f *fdIO) ReadvAt(bufs [][]byte, off int64) (int, error) {
	n, err := unix.Preadv(f.fd, bufs, off)
	for err == unix.EINTR {
		n, err = unix.Preadv(f.fd, bufs, off)
	}
	if err != nil {
		return 0, f.pathErr("preadv", err)
	}
	if n == iovLen(bufs) {
		return n, nil
	}
	return f.finish(bufs, off, n, f.ReadAt)
}

// WritevAt writes bufs with one pwritev2(2). With fua it passes
// RWF_DSYNC, which makes the kernel sync just this range before returning.
// pwrite followed by fdatasync would also write back every other dirty
// page of the file: on ext4 here, with another writer dirtying the file, a
// FUA write took 4-11 ms that way and 0.3-0.4 ms with RWF_DSYNC; on a clean
// file the two cost the same (BenchmarkFUAWrite).
func (f *fdIO) WritevAt(bufs [][]byte, off int64, fua bool) (int, error) {
	flags := 0
	if fua {
		flags = unix.RWF_DSYNC
	}
	n, err := unix.Pwritev2(f.fd, bufs, off, flags)
	for err == unix.EINTR {
		n, err = unix.Pwritev2(f.fd, bufs, off, flags)
	}
	if err != nil {
		return 0, f.pathErr("pwritev2", err)
	}
	if n == iovLen(bufs) {
		return n, nil
	}
	n, err = f.finish(bufs, off, n, f.WriteAt)
	if err == nil && fua {
		err = f.Flush()
	}
	return n, err
}

// finish completes a vectored transfer that moved only done bytes.
func (f *fdIO) finish(bufs [][]byte, off int64, done int, rw func([]byte, int64) (int, error)) (int, error) {
	n, skip := done, done
	for _, b := range bufs {
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		m, err := rw(b[skip:], off+int64(n))
		n += m
		if err != nil {
			return n, err
		}
		skip = 0
	}
	return n, nil
}

func iovLen(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// Flush is fdatasync(2): data and the metadata needed to read it back.
func (f *fdIO) Flush() error {
	err := unix.Fdatasync(f.fd)
	for err == unix.EINTR {
		err = unix.Fdatasync(f.fd)
	}
	if err != nil {
		return f.pathErr("fdatasync", err)
	}
	return nil
}

// Close closes the descriptor.
func (f *fdIO) Close() error {
	if err := unix.Close(f.fd); err != nil {
		return f.pathErr("close", err)
	}
	f.fd = -1
	return nil
}

// openFD opens path with the flags every backend wants.
func openFD(path string, readOnly, direct bool) (int, error) {
	flags := unix.O_RDWR | unix.O_CLOEXEC
	if readOnly {
		flags = unix.O_RDONLY | unix.O_CLOEXEC
	}
	if direct {
		flags |= unix.O_DIRECT
	}
	// A backing store's access time means nothing, and keeping it costs
	// every read: touch_atime was 4% of a page-cache read's kernel time
	// here, even under relatime. Only the file's owner (or CAP_FOWNER) may
	// ask for O_NOATIME; anyone else opens without it.
	flags |= unix.O_NOATIME
	for {
		fd, err := unix.Open(path, flags, 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EPERM && flags&unix.O_NOATIME != 0 {
			flags &^= unix.O_NOATIME
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// dioAlignment asks the kernel for the O_DIRECT alignment of an open file
// (statx STATX_DIOALIGN, Linux 6.1); ok is false when it cannot tell.
func dioAlignment(fd int) (mem, off int, ok bool) {
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &st); err != nil {
		return 0, 0, false
	}
	if st.Mask&unix.STATX_DIOALIGN == 0 || st.Dio_offset_align == 0 {
		return 0, 0, false
	}
	return int(st.Dio_mem_align), int(st.Dio_offset_align), true
}
