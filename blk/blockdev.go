package blk

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNotBlockDevice is returned by OpenBlockDevice for a path that is not a
// block device.
var ErrNotBlockDevice = errors.New("blk: not a block device")

// BlockDevice is a Backend on a block device: pread/pwrite and
// preadv/pwritev2 like File, size from BLKGETSIZE64, discard with
// BLKDISCARD, write-zeroes with BLKZEROOUT, flush with fdatasync. Whether a
// discarded range reads back as zeros depends on the device.
type BlockDevice struct {
	fdIO
	sector             int // logical block size, the unit of discard and zeroout
	memAlign, offAlign int
}

// defaultSector is the logical block size assumed when BLKSSZGET fails.
const defaultSector = 512

// OpenBlockDevice opens a block device as a backend.
func OpenBlockDevice(path string, opt FileOptions) (*BlockDevice, error) {
	fd, err := openFD(path, opt.ReadOnly, opt.Direct)
	if err != nil {
		return nil, fmt.Errorf("blk: %w", err)
	}
	d := &BlockDevice{fdIO: fdIO{fd: fd, path: path}, sector: defaultSector, memAlign: 1, offAlign: 1}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("blk: %w", d.pathErr("fstat", err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %s (mode %#o)", ErrNotBlockDevice, path, st.Mode)
	}
	var sector int32
	if err := ioctlPtr(fd, unix.BLKSSZGET, unsafe.Pointer(&sector)); err == nil && sector > 0 {
		d.sector = int(sector)
	}
	if opt.Direct {
		d.memAlign, d.offAlign = d.sector, d.sector
		if mem, off, ok := dioAlignment(fd); ok {
			d.memAlign, d.offAlign = max(mem, 1), off
		}
	}
	return d, nil
}

// Size asks the kernel for the device size (BLKGETSIZE64).
func (d *BlockDevice) Size() (int64, error) {
	var size uint64
	if err := ioctlPtr(d.fd, unix.BLKGETSIZE64, unsafe.Pointer(&size)); err != nil {
		return 0, d.pathErr("ioctl BLKGETSIZE64", err)
	}
	return int64(size), nil
}

// IOAlignment reports the O_DIRECT alignment, or 1 and 1 for buffered I/O.
func (d *BlockDevice) IOAlignment() (mem, off int) { return d.memAlign, d.offAlign }

// SectorSize is the logical block size, the granularity of Discard and
// WriteZeroes.
func (d *BlockDevice) SectorSize() int { return d.sector }

// Discard sends BLKDISCARD for the range, which must be whole sectors.
func (d *BlockDevice) Discard(off, length int64) error {
	return d.rangeIoctl(OpDiscard, unix.BLKDISCARD, "ioctl BLKDISCARD", off, length)
}

// WriteZeroes sends BLKZEROOUT for the range, which must be whole sectors.
// The kernel uses the device's write-zeroes command when it has one and
// writes zero pages otherwise.
func (d *BlockDevice) WriteZeroes(off, length int64) error {
	return d.rangeIoctl(OpWriteZeroes, unix.BLKZEROOUT, "ioctl BLKZEROOUT", off, length)
}

func (d *BlockDevice) rangeIoctl(op Op, req uint, name string, off, length int64) error {
	arg, err := rangeArg(op, off, length, d.sector)
	if err != nil {
		return err
	}
	if err := ioctlPtr(d.fd, req, unsafe.Pointer(&arg)); err != nil {
		if err == unix.EOPNOTSUPP {
			err = ErrNotSupported
		}
		return d.pathErr(name, err)
	}
	return nil
}

// rangeArg encodes a byte range as the argument of BLKDISCARD and
// BLKZEROOUT: two u64, start and length, in bytes. The kernel rejects
// ranges that are not whole logical blocks with EINVAL; checking here gives
// an error that says why.
func rangeArg(op Op, off, length int64, sector int) ([2]uint64, error) {
	s := int64(sector)
	if off < 0 || length <= 0 {
		return [2]uint64{}, &RangeError{Op: op, Off: off, Len: length}
	}
	if off%s != 0 || length%s != 0 {
		return [2]uint64{}, &AlignmentError{Op: op, Off: off, Len: length, OffAlign: sector}
	}
	return [2]uint64{uint64(off), uint64(length)}, nil
}

// ioctlPtr is ioctl(2) with a pointer argument, retried on EINTR.
func ioctlPtr(fd int, req uint, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return errno
		}
	}
}
