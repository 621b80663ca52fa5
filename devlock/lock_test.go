package devlock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func tempDevice(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "metadata")
	if err := os.WriteFile(p, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustHeld(t *testing.T, err error, wantPID int) *HeldError {
	t.Helper()
	var he *HeldError
	if !errors.As(err, &he) || !errors.Is(err, ErrHeld) {
		t.Fatalf("got %v, want a HeldError", err)
	}
	if he.Holder.PID != wantPID {
		t.Fatalf("holder pid %d, want %d (%v)", he.Holder.PID, wantPID, err)
	}
	return he
}

func TestASecondExclusiveLockIsRefusedWithTheHoldersPid(t *testing.T) {
	p := tempDevice(t)
	l, err := Exclusive(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Exclusive(p)
	he := mustHeld(t, err, os.Getpid())
	if !strings.Contains(err.Error(), p) || !strings.Contains(he.Holder.Command, filepath.Base(os.Args[0])) {
		t.Errorf("message %q does not name the file and the holder's command", err)
	}
	if _, err := Shared(p); !errors.Is(err, ErrHeld) {
		t.Errorf("a reader got %v while a writer holds the file", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Exclusive(p)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	l2.Close()
	if err := l2.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

func TestReadersShareAndKeepAWriterOut(t *testing.T) {
	p := tempDevice(t)
	a, err := Shared(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Shared(p)
	if err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	defer b.Close()
	_, err = Exclusive(p)
	mustHeld(t, err, os.Getpid())
}

func TestAnotherProcesssLockIsNamed(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Fatal("flock(1) not found: install util-linux")
	}
	p := tempDevice(t)
	// flock(1) takes the lock, then runs cat, which holds it until its
	// standard input closes.
	cmd := exec.Command(flock, "--exclusive", p, "sh", "-c", "echo locked; exec cat")
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil {
		t.Fatal(err)
	}
	_, err = Exclusive(p)
	he := mustHeld(t, err, cmd.Process.Pid)
	if !strings.Contains(he.Holder.Command, "flock") {
		t.Errorf("holder command %q", he.Holder.Command)
	}
}

func TestLockHoldersReadsProcLocks(t *testing.T) {
	const locks = `1: FLOCK  ADVISORY  WRITE 4242 00:2b:1234 0 EOF
1: -> FLOCK  ADVISORY  WRITE 4243 00:2b:1234 0 EOF
2: OFDLCK ADVISORY  WRITE -1 00:2b:1234 0 EOF
3: POSIX  ADVISORY  WRITE 77 fd:01:1234 0 EOF
4: POSIX  ADVISORY  READ 78 00:2b:12345 0 EOF
`
	got := lockHolders(strings.NewReader(locks), 0, 0x2b, 1234)
	if len(got) != 1 || got[0] != 4242 {
		t.Errorf("holders of 00:2b:1234: %v, want [4242]", got)
	}
	if got := lockHolders(strings.NewReader(locks), 0xfd, 1, 1234); len(got) != 1 || got[0] != 77 {
		t.Errorf("holders of fd:01:1234: %v, want [77]", got)
	}
}

func TestMountOfReadsMountinfo(t *testing.T) {
	const mi = "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n" +
		"40 22 7:0 / /mnt/x rw - xfs /dev/loop0 rw\n"
	if got := mountOf(strings.NewReader(mi), 7, 0); got != "/mnt/x" {
		t.Errorf("mount of 7:0: %q", got)
	}
	if got := mountOf(strings.NewReader(mi), 7, 1); got != "" {
		t.Errorf("mount of 7:1: %q", got)
	}
}
