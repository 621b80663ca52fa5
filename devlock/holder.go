package devlock

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Holder is who holds a device, as far as this host can tell.
type Holder struct {
	// PID is the process holding a lock on it, 0 if unknown.
	PID int
	// Command is that process's command line, cut short.
	Command string
	// Kernel names a kernel user of a block device: a device-mapper
	// table or a mount.
	Kernel string
}

func (h Holder) String() string {
	switch {
	case h.PID > 0 && h.Command != "":
		return fmt.Sprintf("pid %d (%s)", h.PID, h.Command)
	case h.PID > 0:
		return fmt.Sprintf("pid %d", h.PID)
	case h.Kernel != "":
		return h.Kernel
	}
	return "another program (no process on this host shows a lock on it)"
}

// holderOf finds who holds the file st describes.
func holderOf(st os.FileInfo, block bool) Holder {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return Holder{}
	}
	var h Holder
	if f, err := os.Open("/proc/locks"); err == nil {
		pids := lockHolders(f, unix.Major(sys.Dev), unix.Minor(sys.Dev), sys.Ino)
		f.Close()
		if len(pids) > 0 {
			h.PID = pids[0]
			h.Command = commandLine(h.PID)
			return h
		}
	}
	if block {
		h.Kernel = kernelHolder(unix.Major(sys.Rdev), unix.Minor(sys.Rdev))
	}
	return h
}

// lockHolders returns the pids /proc/locks shows holding a lock (flock,
// POSIX or OFD) on inode ino of device major:minor. Lines read, e.g.:
//
//	1: FLOCK  ADVISORY  WRITE 4242 00:2b:1234 0 EOF
//	2: -> FLOCK  ADVISORY  WRITE 4243 00:2b:1234 0 EOF   (a waiter: skipped)
//
// with the device numbers in hex and the inode in decimal. OFD locks
// show pid -1 and are skipped.
func lockHolders(r io.Reader, major, minor uint32, ino uint64) []int {
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, ino)
	var pids []int
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] == "->" {
			continue
		}
		if f[5] != want {
			continue
		}
		if pid, err := strconv.Atoi(f[4]); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// commandLine is /proc/PID/cmdline with spaces, at most 120 bytes.
func commandLine(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	s := string(bytes.TrimRight(bytes.ReplaceAll(b, []byte{0}, []byte{' '}), " "))
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// kernelHolder names a device-mapper table or a mount using block device
// major:minor, "" if there is none.
func kernelHolder(major, minor uint32) string {
	sysDir := fmt.Sprintf("/sys/dev/block/%d:%d/holders", major, minor)
	if ents, err := os.ReadDir(sysDir); err == nil && len(ents) > 0 {
		name := ents[0].Name()
		if dm, err := os.ReadFile(filepath.Join("/sys/block", name, "dm", "name")); err == nil {
			name = fmt.Sprintf("%s (%s)", strings.TrimSpace(string(dm)), name)
		}
		return "the kernel: device-mapper " + name
	}
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		defer f.Close()
		if mnt := mountOf(f, major, minor); mnt != "" {
			return "the kernel: mounted on " + mnt
		}
	}
	return ""
}

// mountOf returns the mount point of device major:minor in a mountinfo
// listing (field 3 is "major:minor", field 5 the mount point).
func mountOf(r io.Reader, major, minor uint32) string {
	want := fmt.Sprintf("%d:%d", major, minor)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 5 && f[2] == want {
			return f[4]
		}
	}
	return ""
}
