package csi_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thind-storage/thind/csi"
	"github.com/thind-storage/thind/internal/tooltest"
	"github.com/thind-storage/thind/kernelnbd"
)

// loopAttacher is the node plugin's other Attacher, for hosts without the
// kernel's nbd module: libnbd's nbdfuse serves the export as a file over
// a real NBD connection to the daemon, and a loop device makes that file
// a block device. Everything above the attach (blkid, mkfs, mount, bind
// mounts, resize2fs, xfs_growfs, stats) then runs for real.
type loopAttacher struct {
	t      testing.TB
	dir    string
	socket string

	mu    sync.Mutex
	byDev map[string]*fuseFile
}

type fuseFile struct {
	dir  string
	cmd  *exec.Cmd
	done chan error
}

// newLoopAttacher returns an attacher of volumes of the daemon on socket,
// mounting its files under dir. It fails the test when the tools or
// devices are missing.
func newLoopAttacher(t testing.TB, dir, socket string) *loopAttacher {
	tooltest.Need(t, "nbdfuse", "libnbd-bin")
	tooltest.Need(t, "losetup", "mount")
	for _, dev := range []string{"/dev/fuse", "/dev/loop-control"} {
		if _, err := os.Stat(dev); err != nil {
			t.Fatalf("the node tests need %s: %v", dev, err)
		}
	}
	return &loopAttacher{t: t, dir: dir, socket: socket, byDev: map[string]*fuseFile{}}
}

// release unmounts whatever is still mounted under the test's directory
// and detaches every device left, before the daemon stops; a test that
// cleaned up after itself leaves nothing to do.
func (a *loopAttacher) release() {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var mounts []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], a.dir+"/") && !strings.Contains(f[4], "/fuse-") {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		exec.Command("umount", "-l", mounts[i]).Run()
	}
	a.mu.Lock()
	left := len(a.byDev)
	devs := make([]string, 0, left)
	for dev := range a.byDev {
		devs = append(devs, dev)
	}
	a.mu.Unlock()
	for _, dev := range devs {
		if err := a.Detach(context.Background(), dev); err != nil {
			a.t.Errorf("detach %s: %v", dev, err)
		}
	}
	if left > 0 {
		a.t.Errorf("%d devices and %d mounts were left behind", left, len(mounts))
	}
}

// FreeDevice asks the kernel for a free loop device (LOOP_CTL_GET_FREE,
// which also skips devices still being cleared); if taken holds that
// one, it looks for another unbound device.
func (a *loopAttacher) FreeDevice(taken func(string) bool) (string, error) {
	out, err := exec.Command("losetup", "-f").CombinedOutput()
	if dev := strings.TrimSpace(string(out)); err == nil && !taken(dev) {
		return dev, nil
	}
	devs, _ := filepath.Glob("/dev/loop[0-9]*")
	for _, dev := range devs {
		if _, err := os.Stat(filepath.Join("/sys/block", filepath.Base(dev), "loop")); err == nil || taken(dev) {
			continue // bound to a file, or recorded
		}
		return dev, nil
	}
	return "", fmt.Errorf("no free loop device: %v: %s", err, out)
}

func (a *loopAttacher) Attach(ctx context.Context, name, dev string) error {
	dir, err := os.MkdirTemp(a.dir, "fuse-")
	if err != nil {
		return err
	}
	pid := filepath.Join(a.dir, filepath.Base(dir)+".pid")
	f := &fuseFile{dir: dir, done: make(chan error, 1)}
	f.cmd = exec.Command("nbdfuse", "-P", pid, filepath.Join(dir, "disk"), fmt.Sprintf("nbd+unix:///%s?socket=%s", name, a.socket))
	out := &strings.Builder{}
	f.cmd.Stdout, f.cmd.Stderr = out, out
	if err := f.cmd.Start(); err != nil {
		return err
	}
	go func() { f.done <- f.cmd.Wait() }()
	// nbdfuse writes its pid file once the file is served.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(pid); err == nil {
			break
		}
		select {
		case err := <-f.done:
			return fmt.Errorf("nbdfuse %s: %v: %s", name, err, out)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			f.cmd.Process.Kill()
			<-f.done
			return fmt.Errorf("nbdfuse %s: not up in 30s", name)
		}
	}
	if b, err := exec.CommandContext(ctx, "losetup", dev, filepath.Join(dir, "disk")).CombinedOutput(); err != nil {
		a.unfuse(f)
		return fmt.Errorf("losetup %s: %v: %s", dev, err, b)
	}
	a.mu.Lock()
	a.byDev[dev] = f
	a.mu.Unlock()
	return nil
}

func (a *loopAttacher) unfuse(f *fuseFile) error {
	out, err := exec.Command("umount", f.dir).CombinedOutput()
	if err != nil {
		f.cmd.Process.Kill()
	}
	<-f.done
	os.Remove(f.dir)
	if err != nil {
		return fmt.Errorf("umount %s: %v: %s", f.dir, err, out)
	}
	return nil
}

func (a *loopAttacher) Detach(ctx context.Context, dev string) error {
	a.mu.Lock()
	f := a.byDev[dev]
	delete(a.byDev, dev)
	a.mu.Unlock()
	if f == nil {
		return errors.New(dev + ": not attached by this attacher")
	}
	if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
		return fmt.Errorf("losetup -d %s: %v: %s", dev, err, out)
	}
	return a.unfuse(f)
}

func (a *loopAttacher) Attached(dev string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byDev[dev] != nil
}

// Size is the loop device's size, from sysfs as for an NBD device.
func (a *loopAttacher) Size(dev string) (uint64, error) { return kernelnbd.Size(dev) }

// Grow cannot: nbdfuse serves a file of the size the export had when it
// connected, and a loop device is only as large as its file.
func (a *loopAttacher) Grow(context.Context, string, uint64) error {
	return fmt.Errorf("nbdfuse keeps its file at the export's first size: %w", csi.ErrCannotGrow)
}

// count is how many devices are attached.
func (a *loopAttacher) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.byDev)
}
