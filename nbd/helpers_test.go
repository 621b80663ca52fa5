package nbd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/tooltest"
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
	ts := &testServer{Server: srv, exports: ex, sock: filepath.Join(tooltest.ShortDir(t), "nbd.sock")}
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

// nopLogger discards logs, for benchmarks.
func nopLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
