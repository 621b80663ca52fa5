package nbd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testServer is a Server serving on a unix socket in the test's temporary
// directory and on TCP 127.0.0.1:0, stopped (and checked to stop) when the
// test ends.
type testServer struct {
	*Server
	exports *MapExports
	sock    string
	tcp     string
	cancel  context.CancelFunc
	done    chan error
}

// testLogger sends server logs to the test log, so a failing test shows
// what the server saw.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// socketDir returns a directory for a unix socket: the test's temporary
// directory unless its path is too long for sun_path (108 bytes).
func socketDir(t testing.TB) string {
	dir := t.TempDir()
	if len(dir) < 90 {
		return dir
	}
	dir, err := os.MkdirTemp("", "nbd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func startServer(t testing.TB, opts Options, exports ...*Export) *testServer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	ex := NewMapExports(exports...)
	srv, err := NewServer(ex, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, exports: ex, sock: filepath.Join(socketDir(t), "nbd.sock")}
	ul, err := net.Listen("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.tcp = tl.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	ts.done = make(chan error, 2)
	for _, l := range []net.Listener{ul, tl} {
		go func() { ts.done <- srv.Serve(ctx, l) }()
	}
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down and checks that both Serve calls return nil
// in time. It is idempotent.
func (ts *testServer) stop(t testing.TB) {
	t.Helper()
	if ts.done == nil {
		return
	}
	ts.cancel()
	timeout := time.After(time.Minute)
	for range 2 {
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-timeout:
			t.Fatal("Serve did not return after shutdown")
		}
	}
	ts.done = nil
}

func (ts *testServer) unixURI(name string) string {
	return fmt.Sprintf("nbd+unix:///%s?socket=%s", name, ts.sock)
}

func (ts *testServer) tcpURI(name string) string {
	return fmt.Sprintf("nbd://%s/%s", ts.tcp, name)
}

// memExport is an export over a fresh memory backend.
func memExport(name string, size int64) (*Export, *Memory) {
	m := NewMemory(size, MemoryOptions{})
	return &Export{Name: name, Description: "memory volume " + name, Backend: m}, m
}

// needTool returns the path of an external program or fails the test: a
// missing tool is a broken test environment, not a reason to skip.
func needTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install %s (apt-get install %s)", name, name, pkg)
	}
	return p
}

// runTool runs a program and returns its stdout; a non-zero exit fails
// the test with the output.
func runTool(t testing.TB, name, pkg string, args ...string) string {
	t.Helper()
	out, err := runToolErr(t, name, pkg, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// runToolErr runs a program with a deadline and returns its combined
// output and exit error.
func runToolErr(t testing.TB, name, pkg string, args ...string) (string, error) {
	t.Helper()
	path := needTool(t, name, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	// Tools may leave state files in their working directory (fio's
	// verify state): keep them out of the source tree.
	cmd.Dir = t.TempDir()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// exitCode returns the exit status of err from exec, 0 for nil.
func exitCode(t testing.TB, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("running tool: %v", err)
	return -1
}

// libnbdPython returns a python3 that can import libnbd's bindings. The
// first python3 on PATH may be a private build (pyenv) without Debian's
// python3-libnbd, so the system interpreter is tried too.
func libnbdPython(t testing.TB) string {
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

// runPython runs a python script using libnbd with args and returns its
// output; the script signals failure by raising.
func runPython(t testing.TB, script string, args ...string) string {
	t.Helper()
	py := libnbdPython(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{"-c", script}, args...)...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python script failed: %v\n%s", err, out)
	}
	return string(out)
}

// nopLogger discards logs, for benchmarks.
func nopLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
