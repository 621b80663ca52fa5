package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/tooltest"
)

// Shrinking drops the data past the new end (a partial last block is
// zeroed past it), so growing again reads zeros there; growing a
// connected volume is seen by new connections.
func TestResizeShrinksAndGrowsAVolume(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "rs", "--size", "4M")
	uri := d.unixURI("rs")
	qemuIO(t, uri, "write -P 0x11 0 4M", "flush")
	d.mustCLI("volume", "snapshot", "rs", "rs-before")

	start := time.Now()
	d.mustCLI("volume", "resize", "rs", "--size", "1536", "--allow-shrink")
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("shrinking took %v", took)
	}
	if v := d.volume("rs"); v.Size != 1536 || v.MappedBytes != blockSize {
		t.Errorf("after shrinking to 1536 bytes: size %d, %d bytes mapped", v.Size, v.MappedBytes)
	}
	d.mustCLI("volume", "resize", "rs", "--size", "8M")
	if got := strings.TrimSpace(tooltest.Run(t, "nbdinfo", pkgLibnbd, "--size", uri)); got != fmt.Sprint(8<<20) {
		t.Errorf("nbdinfo --size after growing: %s", got)
	}
	qemuIO(t, uri, "read -P 0x11 0 1536", "read -P 0 1536 63k", "read -P 0 64k 8128k")
	want := provisioned{}
	want.touch(0, 1)
	if got := nbdinfoMap(t, uri); fmt.Sprint(got) != fmt.Sprint(want.extents(8<<20)) {
		t.Errorf("nbdinfo --map after shrink and grow: %v", got)
	}
	// The snapshot taken before still has everything.
	tooltest.Run(t, "qemu-io", pkgQemu, "-f", "raw", "-c", "read -P 0x11 0 4M", d.unixURI("rs-before"))

	// Growing a connected volume: the connection keeps its size, a new
	// one sees the new size and can write at its end.
	c := d.dial(t, "rs")
	d.mustCLI("volume", "resize", "rs", "--size", "16M")
	if c.size != 8<<20 {
		t.Errorf("the connection's size %d", c.size)
	}
	qemuIO(t, uri, "write -P 0x22 16320k 64k", "read -P 0x22 16320k 64k")
}

// qemuIO runs qemu-io commands against a raw NBD export and fails the test
// if any of them reports a failure (qemu-io exits 0 even then).
func qemuIO(t *testing.T, uri string, cmds ...string) string {
	t.Helper()
	args := []string{"-f", "raw"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out := tooltest.Run(t, "qemu-io", pkgQemu, append(args, uri)...)
	if strings.Contains(out, "failed") {
		t.Fatalf("qemu-io %v:\n%s", cmds, out)
	}
	return out
}

// onlineGrowScript holds one connection to a volume across a grow and a
// refused shrink, both done by the test when the script asks ("? grow",
// "? shrink"). After the grow the connection, told the new size as the
// kernel's client is by NBD_SET_SIZE (libnbd's own bounds check off),
// writes and reads at the new end; the new space reads as zeros; nothing
// past the new end is served.
const onlineGrowScript = `
import errno
import sys
import nbd

def fails(f, code):
    try:
        f()
    except nbd.Error as e:
        assert e.errno in (code, errno.errorcode[code]), (e.errno, code)
        return
    raise AssertionError("no error")

h = nbd.NBD()
h.connect_uri(sys.argv[1])
old = h.get_size()
h.pwrite(b"o" * 65536, old - 65536)
h.flush()
print("? grow", flush=True)
new = int(sys.stdin.readline())
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_BOUNDS)
h.pwrite(b"n" * 65536, new - 65536, nbd.CMD_FLAG_FUA)
assert h.pread(65536, new - 65536) == b"n" * 65536
assert h.pread(65536, old) == bytes(65536), "the new space reads as zeros"
fails(lambda: h.pread(512, new), errno.EINVAL)
fails(lambda: h.pwrite(b"x" * 4096, new - 2048), errno.ENOSPC)
print("? shrink", flush=True)
assert sys.stdin.readline().strip() == "refused"
assert h.pread(65536, old - 65536) == b"o" * 65536
assert h.pread(65536, new - 65536) == b"n" * 65536
print("all assertions passed")
`

// A volume grown while a client is connected: the connection addresses
// the new space (the NBD server checks requests against the live size);
// shrinking it while connected is refused and changes nothing.
func TestAConnectionUsesAVolumeGrownUnderIt(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "live", "--size", "8M")
	out := tooltest.RunPythonDialog(t, onlineGrowScript, func(q string) string {
		switch q {
		case "grow":
			d.mustCLI("volume", "resize", "live", "--size", "24M")
			return fmt.Sprint(24 << 20)
		case "shrink":
			_, errOut, code := d.cli("volume", "resize", "live", "--size", "4M", "--allow-shrink")
			if code == 0 || !strings.Contains(errOut, "disconnect it before shrinking") {
				t.Errorf("shrinking a connected volume: exit %d: %s", code, errOut)
			}
			if v := d.volume("live"); v.Size != 24<<20 {
				t.Errorf("after the refused shrink the volume is %d bytes", v.Size)
			}
			return "refused"
		}
		t.Fatalf("unexpected question %q", q)
		return ""
	}, d.unixURI("live"))
	if !strings.Contains(out, "all assertions passed") {
		t.Fatalf("script output:\n%s", out)
	}
	// What the connection wrote past the old end is in the volume.
	qemuIO(t, d.unixURI("live"), "read -P 0x6e 24512k 64k", "read -P 0x6f 8128k 64k")
}
