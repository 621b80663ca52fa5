// Package tooltest runs the real programs that tests drive (thin tools,
// libnbd's clients and Python bindings, qemu-img, fio): found on PATH or
// the test fails, since a missing tool is a broken test environment, not
// a reason to skip; bounded by a deadline, so a hung tool fails the test
// instead of hanging it; run in a temporary directory, so state files
// some tools leave (fio's verify state) stay out of the source tree.
package tooltest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Timeout bounds one run of a tool.
const Timeout = 3 * time.Minute

// Need returns the path of program name, which Debian package pkg
// provides, or fails the test.
func Need(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install %s (apt-get install %s)", name, pkg, pkg)
	}
	return p
}

// Run runs a program and returns its stdout; a non-zero exit fails the
// test with the output.
func Run(t testing.TB, name, pkg string, args ...string) string {
	t.Helper()
	out, errOut, err := RunErr(t, name, pkg, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// RunErr runs a program and returns its stdout, stderr and exit error.
func RunErr(t testing.TB, name, pkg string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	path := Need(t, name, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = t.TempDir()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err = cmd.Run()
	if took := time.Since(start); took > 2*time.Second {
		t.Logf("%s %.60s took %v", name, strings.Join(args, " "), took.Round(time.Millisecond))
	}
	return out.String(), errOut.String(), err
}

// ExitStatus is the exit status in err from exec, 0 for nil; an error
// that is not an exit status fails the test.
func ExitStatus(t testing.TB, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("running a tool: %v", err)
	return -1
}

// LibnbdPython returns a python3 that can import libnbd's bindings: the
// first python3 on PATH may be a private build (pyenv) without Debian's
// python3-libnbd, so the system interpreter is tried too.
func LibnbdPython(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import nbd").Run() == nil {
			return path
		}
	}
	t.Fatal("no python3 can import nbd: install python3-libnbd (apt-get install python3-libnbd)")
	return ""
}

// RunPython runs a Python script that uses libnbd, with args, and returns
// its output; the script signals failure by raising.
func RunPython(t testing.TB, script string, args ...string) string {
	t.Helper()
	py := LibnbdPython(t)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{"-c", script}, args...)...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python script failed: %v\n%s", err, out)
	}
	return string(out)
}

// ShortDir returns a temporary directory whose path leaves room for unix
// socket names (sun_path holds 108 bytes).
func ShortDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) < 60 {
		return dir
	}
	dir, err := os.MkdirTemp("", "thind")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// NBDInfoProbe runs `nbdinfo ARGS... URI` for a yes/no question (--can,
// --is, --has): exit 0 is yes, 2 is no, anything else fails the test.
func NBDInfoProbe(t testing.TB, uri string, args ...string) bool {
	t.Helper()
	out, errOut, err := RunErr(t, "nbdinfo", "libnbd-bin", append(args, uri)...)
	switch ExitStatus(t, err) {
	case 0:
		return true
	case 2:
		return false
	}
	t.Fatalf("nbdinfo %v %s: %v\n%s%s", args, uri, err, out, errOut)
	return false
}
