package kernelnbd

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// nbdSetSize is NBD_SET_SIZE (_IO(0xab, 2)). On a device configured by
// ioctls (NBD_SET_SOCK, NBD_DO_IT, as go-nbd's client does) the kernel
// takes it while the device runs: nbd_set_size() in drivers/block/nbd.c
// records the new size and, the device being up, applies it with
// set_capacity_and_notify(), so a mounted filesystem can then grow into
// it. A device set up through netlink refuses it (NBD_RT_BOUND).
const nbdSetSize = 0xab02

// Size is dev's size in bytes, from sysfs (512-byte sectors whatever the
// device's block size).
func Size(dev string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join("/sys/class/block", filepath.Base(dev), "size"))
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: size %q: %w", dev, b, err)
	}
	return n * 512, nil
}

// SetSize makes the running dev size bytes long. The server must serve
// that size on the device's connection (thind's does once the volume has
// grown); the kernel does not ask it.
func SetSize(dev string, size uint64) error {
	if size == 0 || size%512 != 0 || size > 1<<62 {
		return fmt.Errorf("%s: NBD_SET_SIZE %d: not a positive multiple of 512", dev, size)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), nbdSetSize, uintptr(size)); errno != 0 {
		return fmt.Errorf("%s: NBD_SET_SIZE %d: %w", dev, size, errno)
	}
	got, err := Size(dev)
	if err != nil {
		return err
	}
	if got != size {
		return fmt.Errorf("%s: NBD_SET_SIZE %d: the device shows %d bytes", dev, size, got)
	}
	return nil
}
