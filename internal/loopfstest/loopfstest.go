// Package loopfstest mounts a fresh file system on a loop device for a
// test, so that code whose behaviour depends on the file system (reflink
// clones on XFS, their absence on ext4) runs on the real one. It needs
// root, mkfs.xfs and mkfs.ext4; without root the test is skipped, as
// other loop-device tests are.
package loopfstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Kinds are the file systems Mount makes: XFS with reflink, which clones
// ranges, and ext4, which cannot.
var Kinds = []string{"xfs-reflink", "ext4"}

// Mount makes a file system of kind on a sparse image of size bytes,
// mounts it, and returns the mount point; the test's end unmounts it and
// detaches the loop device.
func Mount(t testing.TB, kind string, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices and mounts need root")
	}
	var mkfs []string
	switch kind {
	case "xfs-reflink":
		mkfs = []string{"mkfs.xfs", "-q", "-f", "-m", "reflink=1"}
	case "ext4":
		mkfs = []string{"mkfs.ext4", "-q", "-F"}
	default:
		t.Fatalf("loopfstest: unknown file system %q", kind)
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	dev := run(t, "losetup", "--find", "--show", img)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	run(t, append(mkfs, dev)...)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", dev, mnt)
	// Cleanups run last-in first-out: unmount before the detach.
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return mnt
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
