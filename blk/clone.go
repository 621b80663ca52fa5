package blk

import (
	"errors"

	"golang.org/x/sys/unix"
)

// CopyRange copies within the file without the bytes passing through
// user space. First it clones (FICLONERANGE): on a reflink file system
// the destination then shares the source's blocks, so breaking sharing
// costs a metadata update, and the file system copies only what is later
// overwritten. Where cloning is not supported it copies in the kernel
// (copy_file_range; NFS and some file systems offload that too). Where
// neither works it returns ErrNotSupported and the dispatcher copies
// through memory.
func (f *File) CopyRange(src, dst, length int64) error {
	if !f.noClone.Load() {
		err := unix.IoctlFileCloneRange(f.fd, &unix.FileCloneRange{
			Src_fd: int64(f.fd), Src_offset: uint64(src), Src_length: uint64(length), Dest_offset: uint64(dst),
		})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EXDEV),
			errors.Is(err, unix.ENOSYS):
			// The file system cannot share blocks (ext4, tmpfs).
			f.noClone.Store(true)
		case errors.Is(err, unix.EINVAL):
			// Not aligned to the file system's block: copy this one.
		default:
			return f.pathErr("clone range", err)
		}
	}
	if f.noCopyRange.Load() {
		return f.pathErr("copy range", ErrNotSupported)
	}
	for length > 0 {
		roff, woff := src, dst
		n, err := unix.CopyFileRange(f.fd, &roff, f.fd, &woff, int(length), 0)
		if err == unix.EINTR {
			continue
		}
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EXDEV) ||
			errors.Is(err, unix.EINVAL) {
			f.noCopyRange.Store(true)
			return f.pathErr("copy range", ErrNotSupported)
		}
		if err != nil {
			return f.pathErr("copy range", err)
		}
		if n == 0 {
			// Past the end of the file: cannot happen for checked
			// requests, but never loop on it.
			return f.pathErr("copy range", ErrNotSupported)
		}
		src, dst, length = src+int64(n), dst+int64(n), length-int64(n)
	}
	return nil
}

var _ CopyBackend = (*File)(nil)
