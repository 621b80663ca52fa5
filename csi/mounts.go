package csi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// isMountPoint reports whether path is a mount point, from
// /proc/self/mountinfo (field 5, with the kernel's octal escapes).
func isMountPoint(path string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == path {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescapeMount undoes mountinfo's \ooo escapes of space, tab, newline
// and backslash.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// run runs a tool and returns its error with its output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// fsType is the filesystem on dev, "" if blkid finds none (exit 2: the
// device is blank, and only then may it be formatted).
func fsType(ctx context.Context, dev string) (string, error) {
	out, err := exec.CommandContext(ctx, "blkid", "-p", "-s", "TYPE", "-o", "value", dev).Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("blkid %s: %w", dev, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// mkfs formats a blank device.
func mkfs(ctx context.Context, fs, dev string) error {
	var err error
	switch fs {
	case "ext4":
		// No lazy init: it would write the inode tables in the background
		// after the mount, long after the stage returned.
		_, err = run(ctx, "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard", dev)
	case "xfs":
		_, err = run(ctx, "mkfs.xfs", "-q", "-K", dev)
	default:
		err = fmt.Errorf("filesystem %q: want one of %v", fs, filesystems)
	}
	return err
}

// growFS grows the filesystem on dev mounted at dir to the device's size.
//
// A driver killed during the grow leaves its resize2fs or xfs_growfs
// running, and the kernel refuses a second online resize of one
// filesystem meanwhile (ext4: EBUSY). So the tool runs holding an
// exclusive flock on the device node that it inherits: the retry's
// growFS waits for the orphan to finish, then finds the filesystem grown
// (both tools then have nothing to do and succeed).
func growFS(ctx context.Context, fs, dev, dir string) error {
	var name string
	var args []string
	switch fs {
	case "ext4", "ext3", "ext2":
		name, args = "resize2fs", []string{dev}
	case "xfs":
		name, args = "xfs_growfs", []string{dir}
	default:
		return fmt.Errorf("cannot grow filesystem %q", fs)
	}
	lock, err := lockDevice(ctx, dev)
	if err != nil {
		return err
	}
	defer lock.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.ExtraFiles = []*os.File{lock}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// lockDevice takes an exclusive flock on dev's node, waiting (until ctx
// ends) while another process holds it.
func lockDevice(ctx context.Context, dev string) (*os.File, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", dev, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: held by an earlier grow: %w", dev, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
