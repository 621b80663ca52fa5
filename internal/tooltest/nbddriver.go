package tooltest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// NBDDriver is one libnbd connection that a test drives a request at a
// time, so that it can change the world (inject a fault, grow the pool)
// between two requests of the same connection.
type NBDDriver struct {
	t      testing.TB
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	cancel context.CancelFunc
}

// driverScript reads one request a line and answers "ok", "mismatch"
// (a read whose bytes differ from the pattern) or "err ERRNO".
const driverScript = `
import errno, nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:
    f = line.split()
    try:
        if f[0] == "write":
            h.pwrite(bytes([int(f[3])]) * int(f[2]), int(f[1]), nbd.CMD_FLAG_FUA if len(f) > 4 else 0)
        elif f[0] == "read":
            if h.pread(int(f[2]), int(f[1])) != bytes([int(f[3])]) * int(f[2]):
                print("mismatch", flush=True)
                continue
        elif f[0] == "flush":
            h.flush()
        print("ok", flush=True)
    except nbd.Error as e:
        code = e.errno
        if isinstance(code, int):
            code = errno.errorcode.get(code, str(code))
        print("err", code, flush=True)
h.shutdown()
`

// DialNBD connects libnbd's Python bindings to uri.
func DialNBD(t testing.TB, uri string) *NBDDriver {
	t.Helper()
	py := LibnbdPython(t)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	d := &NBDDriver{t: t, cancel: cancel, cmd: exec.CommandContext(ctx, py, "-c", driverScript, uri)}
	var err error
	if d.in, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	d.cmd.Stderr = &stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.out = bufio.NewScanner(out)
	t.Cleanup(d.Close)
	if !d.out.Scan() || d.out.Text() != "ready" {
		d.Close()
		t.Fatalf("libnbd could not connect to %s: %s", uri, stderr.String())
	}
	return d
}

// Do sends one request and returns the answer: "write OFF LEN BYTE
// [fua]" writes LEN bytes of BYTE, "read OFF LEN BYTE" reads them and
// compares, "flush" flushes.
func (d *NBDDriver) Do(format string, args ...any) string {
	d.t.Helper()
	req := fmt.Sprintf(format, args...)
	if _, err := fmt.Fprintln(d.in, req); err != nil {
		d.t.Fatalf("%s: %v", req, err)
	}
	if !d.out.Scan() {
		d.t.Fatalf("%s: the libnbd client ended: %v", req, d.out.Err())
	}
	return d.out.Text()
}

// Want sends a request and fails the test unless the answer is want.
func (d *NBDDriver) Want(want, format string, args ...any) {
	d.t.Helper()
	if got := d.Do(format, args...); got != want {
		d.t.Fatalf("%s: %q, want %q", fmt.Sprintf(format, args...), got, want)
	}
}

// Close disconnects.
func (d *NBDDriver) Close() {
	if d.in == nil {
		return
	}
	d.in.Close()
	d.in = nil
	d.cmd.Wait()
	d.cancel()
}
