package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/tooltest"
)

// TestTheREADMEsCommandsWorkInAFreshClone clones the repository and runs
// README.md's set-up command exactly as written, `go run ./cmd/thind
// serve`, on its defaults (./thind-data, NBD on thind-data/nbd.sock only,
// metrics on 127.0.0.1:9810), then README.md's nbdinfo command from the
// same directory. The daemon runs in a network namespace of its own, so
// the metrics port is free whatever else runs on this machine (another
// thind, another test); where namespaces are not allowed it runs in the
// host's, and the test fails at once if the port is taken.
func TestTheREADMEsCommandsWorkInAFreshClone(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const serve = "go run ./cmd/thind serve"
	const info = "nbdinfo 'nbd+unix:///?socket=thind-data/nbd.sock'"
	for _, c := range []string{serve, info} {
		if !bytes.Contains(readme, []byte("\n    "+c)) {
			t.Fatalf("README.md no longer gives the command %q: update this test", c)
		}
	}

	clone := filepath.Join(t.TempDir(), "thind")
	git := tooltest.Need(t, "git", pkgGit)
	if out, err := exec.Command(git, "clone", "--quiet", repoRoot, clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	head, _ := exec.Command(git, "-C", clone, "log", "-1", "--format=%h %s").Output()
	t.Logf("cloned %s", bytes.TrimSpace(head))

	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go not found on PATH")
	}
	logPath := filepath.Join(t.TempDir(), "serve.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	start := func(attr *syscall.SysProcAttr) (*exec.Cmd, error) {
		cmd := exec.Command(goBin, strings.Fields(serve)[1:]...)
		cmd.Dir = clone
		cmd.Env = daemonEnv()
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = attr
		return cmd, cmd.Start()
	}
	// A process group of its own, to kill both go run and thind if the
	// test fails.
	cmd, err := start(&syscall.SysProcAttr{Setpgid: true, Cloneflags: syscall.CLONE_NEWNET})
	if err == nil {
		t.Log("go run ./cmd/thind serve runs in a network namespace of its own")
	}
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
		t.Logf("no network namespace (%v): serving on the host's loopback", err)
		for _, addr := range []string{"127.0.0.1:9810"} {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("README's default address %s is taken (%v): stop whatever uses it", addr, err)
			}
			l.Close()
		}
		cmd, err = start(&syscall.SysProcAttr{Setpgid: true})
	}
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("go run ./cmd/thind serve:\n%s", b)
		}
	})

	// README: "in another shell from the same directory". go run compiles
	// first; the daemon is up when the CLI reaches it.
	inClone := func(name string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), tooltest.Timeout)
		defer cancel()
		c := exec.CommandContext(ctx, name, args...)
		c.Dir = clone
		c.Env = daemonEnv()
		out, err := c.CombinedOutput()
		return string(out), err
	}
	waitFor(t, "go run ./cmd/thind serve to serve", 5*time.Minute, func() error {
		select {
		case err := <-exited:
			exited <- err
			stopped = true
			t.Fatalf("go run ./cmd/thind serve exited: %v", err)
		default:
		}
		out, err := inClone(thindBin, "pool", "status")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	out, err := inClone(tooltest.Need(t, "nbdinfo", pkgLibnbd), "nbd+unix:///?socket=thind-data/nbd.sock")
	if err != nil {
		t.Fatalf("%s: %v\n%s", info, err, out)
	}
	for _, want := range []string{`export="default":`, "export-size: 17179869184 (16G)", "is_read_only: false", "can_trim: true"} {
		if !strings.Contains(out, want) {
			t.Errorf("%s lacks %q:\n%s", info, want, out)
		}
	}
	st, err := inClone(thindBin, "pool", "status")
	if err != nil || !strings.Contains(st, "pool:           thind-data") || !strings.Contains(st, "of 64GiB") {
		t.Errorf("thind pool status on the README's defaults: %v\n%s", err, st)
	}

	// Stop thind itself with SIGTERM: go run then exits with thind's
	// status. (Ctrl-C, SIGINT to the whole group, stops thind with status
	// 0 too, but go run exits 1 whenever it sees SIGINT itself.)
	child := goRunChild(t, cmd.Process.Pid)
	syscall.Kill(child, syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("go run ./cmd/thind serve exited with %v after SIGTERM to thind, want 0", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("go run ./cmd/thind serve did not exit within a minute of SIGTERM to thind")
	}
	for _, f := range []string{"metadata", "data", "catalog"} {
		if _, err := os.Stat(filepath.Join(clone, "thind-data", f)); err != nil {
			t.Errorf("thind-data/%s: %v", f, err)
		}
	}
	// The defaults serve NBD on the unix socket and nothing else.
	log, _ := os.ReadFile(logPath)
	var listeners []string
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, `msg="serving NBD"`) {
			listeners = append(listeners, l)
		}
	}
	if len(listeners) != 1 || !strings.Contains(listeners[0], "addr=thind-data/nbd.sock") {
		t.Errorf("on its defaults thind serves NBD on %q, want thind-data/nbd.sock only", listeners)
	}
}

// goRunChild returns the pid of the program go run (pid) started.
func goRunChild(t *testing.T, pid int) int {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			var child int
			if _, err := fmt.Sscan(c, &child); err == nil {
				return child
			}
		}
	}
	t.Fatalf("go run (pid %d) has no child process", pid)
	return 0
}
