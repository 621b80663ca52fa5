package blk_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/blk/blktest"
)

func TestFileMeetsTheBackendContract(t *testing.T) {
	for _, direct := range []bool{false, true} {
		name := map[bool]string{false: "buffered", true: "O_DIRECT"}[direct]
		t.Run(name, func(t *testing.T) {
			blktest.Run(t, func(t *testing.T, size int64) blk.Backend {
				path := sparseFile(t, size)
				f, err := blk.OpenFile(path, blk.FileOptions{Direct: direct})
				if err != nil {
					t.Fatal(err)
				}
				return f
			}, blktest.Options{DiscardZeroes: true})
		})
	}
}

// TestBlockDeviceMeetsTheBackendContract runs the contract on loop
// devices over sparse files: the kernel's block layer answers the
// discard, zeroout and size ioctls. Attaching a loop device needs root;
// other users skip with the reason.
func TestBlockDeviceMeetsTheBackendContract(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("attaching a loop device needs root (losetup); run as root for the block-device contract")
	}
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		if losetup, err = exec.LookPath("/usr/sbin/losetup"); err != nil {
			t.Skip("losetup (util-linux) is not installed")
		}
	}
	for _, direct := range []bool{false, true} {
		name := map[bool]string{false: "buffered", true: "O_DIRECT"}[direct]
		t.Run(name, func(t *testing.T) {
			blktest.Run(t, func(t *testing.T, size int64) blk.Backend {
				path := sparseFile(t, size)
				out, err := exec.Command(losetup, "--find", "--show", path).CombinedOutput()
				if err != nil {
					t.Fatalf("losetup --find --show %s: %v: %s", path, err, out)
				}
				dev := strings.TrimSpace(string(out))
				t.Cleanup(func() {
					if out, err := exec.Command(losetup, "--detach", dev).CombinedOutput(); err != nil {
						t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
					}
				})
				d, err := blk.OpenBlockDevice(dev, blk.FileOptions{Direct: direct})
				if err != nil {
					t.Fatal(err)
				}
				return d
			}, blktest.Options{DiscardZeroes: true})
		})
	}
}

// sparseFile returns the path of a new sparse file of size bytes.
func sparseFile(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backing")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	return path
}
