package devlock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// loopDevice attaches a loop device to a new file and detaches it at the
// end. It needs root.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

func TestABlockDeviceIsClaimedExclusively(t *testing.T) {
	dev := loopDevice(t, 64<<20)
	l, err := Exclusive(dev)
	if err != nil {
		t.Fatal(err)
	}
	// Another O_EXCL opener, as mount or the kernel's dm would be, is
	// kept out by the claim, not only by the flock.
	if f, err := os.OpenFile(dev, os.O_RDONLY|os.O_EXCL, 0); err == nil {
		f.Close()
		t.Error("an O_EXCL open succeeded while thind holds the device")
	}
	_, err = Exclusive(dev)
	mustHeld(t, err, os.Getpid())
	l.Close()
	if l, err = Exclusive(dev); err != nil {
		t.Fatalf("after Close: %v", err)
	}
	l.Close()
}

func TestAMountedBlockDeviceIsHeldByTheKernel(t *testing.T) {
	dev := loopDevice(t, 64<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", dev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	for name, take := range map[string]func(string) (*Lock, error){"Exclusive": Exclusive, "Shared": Shared} {
		_, err := take(dev)
		var he *HeldError
		if !errors.As(err, &he) {
			t.Fatalf("%s on a mounted device: %v", name, err)
		}
		if !strings.Contains(he.Holder.Kernel, "mounted on "+mnt) {
			t.Errorf("%s: holder %q, want it mounted on %s", name, he.Holder, mnt)
		}
	}
}
