package kernelnbd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pojntfx/go-nbd/pkg/client"
)

// nbdSetFlags is NBD_SET_FLAGS (_IO(0xab, 10)): go-nbd's client does not
// pass the export's transmission flags to the kernel, which would then
// send no FLUSH, FUA or TRIM; we set them ourselves before it connects.
const nbdSetFlags = 0xab0a

// FreeDevice returns the first /dev/nbdN with no connection that skip
// (if not nil) does not reject.
func FreeDevice(skip func(dev string) bool) (string, error) {
	for i := 0; i < 1024; i++ {
		sys := fmt.Sprintf("/sys/block/nbd%d", i)
		if _, err := os.Stat(sys); err != nil {
			break
		}
		dev := fmt.Sprintf("/dev/nbd%d", i)
		if Free(dev) && (skip == nil || !skip(dev)) {
			return dev, nil
		}
	}
	return "", errors.New("no free /dev/nbdN: is the nbd module loaded (modprobe nbd)?")
}

// Connected reports whether /dev/nbdN has a live connection: the kernel
// shows the pid of its client in sysfs only then.
func Connected(dev string) bool {
	_, err := os.Stat(filepath.Join("/sys/block", filepath.Base(dev), "pid"))
	return err == nil
}

// Free reports whether dev is neither connected nor still being released
// (its size back to 0).
func Free(dev string) bool {
	size, err := Size(dev)
	return err == nil && size == 0 && !Connected(dev)
}

// holder is the task that runs dev's connection (NBD_DO_IT), from sysfs;
// 0 if none.
func holder(dev string) int {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// gone reports whether task pid has exited (a zombie has closed its
// files too).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) state ...: the state follows the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// DisconnectAndWait detaches dev and waits, until ctx ends, for the
// process that held its connection to exit and the device to be Free.
// The kernel keeps a device's configuration until its last opener closes
// it, and that process clears the socket on its way out: an attach set
// up before then fails with EBUSY or has its new socket cleared.
func DisconnectAndWait(ctx context.Context, dev string) error {
	pid := holder(dev)
	if err := Disconnect(dev); err != nil {
		return err
	}
	for (pid != 0 && !gone(pid)) || !Free(dev) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: still held after its disconnect (attach task %d): %w", dev, pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Connect attaches the export name of the server at network/addr to dev
// and serves it until the device is disconnected (Disconnect) or the
// connection fails; onConnected runs once the kernel has the device up.
// timeout is the seconds before the kernel fails a request the server
// does not answer (0: never).
func Connect(network, addr, name, dev string, timeout int, onConnected func()) error {
	flags, err := ExportFlags(network, addr, name)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), nbdSetFlags, uintptr(flags)); errno != 0 {
		return fmt.Errorf("%s: NBD_SET_FLAGS: %w", dev, errno)
	}
	conn, err := net.Dial(network, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	err = client.Connect(conn, f, &client.Options{ExportName: name, Timeout: timeout, OnConnected: onConnected})
	if err != nil && !errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("attach %s to %s: %w", name, dev, err)
	}
	return nil
}

// Disconnect detaches dev.
func Disconnect(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := client.Disconnect(f); err != nil {
		return fmt.Errorf("detach %s: %w", dev, err)
	}
	return nil
}
