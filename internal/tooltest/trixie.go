package tooltest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Debian 12's libnbd (1.14) predates NBD extended headers and its qemu
// is 7.2; a Debian 13 (trixie) root gives the tests a current libnbd
// (1.22) and qemu (10) without changing the host. It shares the host's
// network namespace, so its clients reach a daemon on 127.0.0.1; unix
// sockets under the host's /tmp are not visible inside it.
const (
	// TrixiePackages are what the root holds besides minbase.
	TrixiePackages = "libnbd-bin,python3-libnbd,qemu-utils"
	// trixieBuildTimeout bounds debootstrap: a cold build downloads
	// about 60 MB.
	trixieBuildTimeout = 10 * time.Minute
	// trixieStamp marks a finished root and holds TrixiePackages: a
	// build that died half way leaves none, and a root made for another
	// package list does not match, so either is built again.
	trixieStamp = ".thind-trixie-complete"
)

// Chroot is a Debian root that runs programs with chroot(8).
type Chroot struct {
	Root string
}

var trixie struct {
	sync.Mutex
	c *Chroot
}

// TrixieCache is where the root is kept between runs on one machine:
// $THIND_TRIXIE_CACHE, else ~/.cache/thind-trixie (beside test/vm's
// thind-vm cache).
func TrixieCache() string {
	if d := os.Getenv("THIND_TRIXIE_CACHE"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home := os.Getenv("HOME")
		if home == "" {
			home = "/root"
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "thind-trixie")
}

// Trixie returns the Debian 13 root, building it with debootstrap the
// first time. The build runs under a lock on the cache directory, so
// the test binaries of several packages running at once build it once.
// Without debootstrap, root or the network the test fails: a missing
// client is a broken test environment.
func Trixie(t testing.TB) *Chroot {
	t.Helper()
	trixie.Lock()
	defer trixie.Unlock()
	if trixie.c != nil {
		return trixie.c
	}
	cache := TrixieCache()
	root := filepath.Join(cache, "root")
	if !trixieBuilt(root) {
		if err := buildTrixie(t, cache, root); err != nil {
			t.Fatalf("the Debian 13 (trixie) root for current libnbd and qemu: %v", err)
		}
	}
	trixie.c = &Chroot{Root: root}
	return trixie.c
}

// buildTrixie runs debootstrap into a fresh directory under the cache's
// lock, then renames it into place and stamps it.
func buildTrixie(t testing.TB, cache, root string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("debootstrap and chroot need root")
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", cache, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if trixieBuilt(root) {
		return nil // another test binary built it while we waited
	}
	debootstrap := Need(t, "debootstrap", "debootstrap")
	tmp := root + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	mirror := os.Getenv("THIND_TRIXIE_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	ctx, cancel := context.WithTimeout(context.Background(), trixieBuildTimeout)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, debootstrap, "--variant=minbase", "--include="+TrixiePackages, "trixie", tmp, mirror)
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("debootstrap trixie from %s (network needed): %v\n%s", mirror, err, tail(out, 20))
	}
	t.Logf("debootstrap of trixie with %s took %v", TrixiePackages, time.Since(start).Round(time.Second))
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	if err := os.Rename(tmp, root); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, trixieStamp), []byte(TrixiePackages), 0o644)
}

// trixieBuilt reports whether root is a finished build of TrixiePackages.
func trixieBuilt(root string) bool {
	stamp, err := os.ReadFile(filepath.Join(root, trixieStamp))
	return err == nil && string(stamp) == TrixiePackages
}

// tail is the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// RunErr runs /usr/bin/NAME inside the root and returns its stdout,
// stderr and exit error, bounded by Timeout.
func (c *Chroot) RunErr(t testing.TB, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	chroot := Need(t, "chroot", "coreutils")
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, chroot, append([]string{c.Root, "/usr/bin/" + name}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root", "LANG=C.UTF-8"}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// Run runs /usr/bin/NAME inside the root and returns its stdout; a
// non-zero exit fails the test with the output.
func (c *Chroot) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, errOut, err := c.RunErr(t, name, args...)
	if err != nil {
		t.Fatalf("trixie %s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// RunPython runs a script with the root's python3 and libnbd bindings;
// the script signals failure by raising.
func (c *Chroot) RunPython(t testing.TB, script string, args ...string) string {
	t.Helper()
	out, errOut, err := c.RunErr(t, "python3", append([]string{"-c", script}, args...)...)
	if err != nil {
		t.Fatalf("trixie python script failed: %v\n%s%s", err, out, errOut)
	}
	return out + errOut
}
