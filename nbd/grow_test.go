package nbd

import (
	"strconv"
	"strings"
	"testing"

	"github.com/thind-storage/thind/internal/tooltest"
)

// growScript connects, writes at the old end and asks the test to grow
// the export ("? grow"), which answers with the new size. It then turns
// off libnbd's own bounds check, as a client told of the growth out of
// band (the kernel by NBD_SET_SIZE) has its new size, and uses the new
// space on the same connection.
const growScript = `
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
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(sys.argv[1])
old = h.get_size()
h.pwrite(b"a" * 4096, old - 4096)
print("? grow", flush=True)
new = int(sys.stdin.readline())
assert h.get_size() == old, "libnbd keeps the handshake's size"
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_BOUNDS)

h.pwrite(b"b" * 65536, new - 65536)
assert h.pread(65536, new - 65536) == b"b" * 65536
assert h.pread(8192, old - 4096) == b"a" * 4096 + bytes(4096), "the new space reads as zeros"
seen = []
h.block_status(new - old, old, lambda m, o, e, err: seen.append(e))
assert seen == [[new - old - 65536, 3, 65536, 0]], seen
# A client that asks within the old size sees nothing past it.
seen = []
h.block_status(4096, old - 4096, lambda m, o, e, err: seen.append(e))
assert seen == [[4096, 0]], seen
# Never beyond the live size.
fails(lambda: h.pread(4096, new - 2048), errno.EINVAL)
fails(lambda: h.pwrite(b"c" * 512, new), errno.ENOSPC)
fails(lambda: h.trim(65536 * 2, new - 65536), errno.EINVAL)

h2 = nbd.NBD()
h2.connect_uri(sys.argv[1])
assert h2.get_size() == new, "a new connection is told the new size"
assert h2.pread(65536, new - 65536) == b"b" * 65536
print("all assertions passed")
`

func TestLibnbdConnectionAddressesAnExportGrownAfterItsHandshake(t *testing.T) {
	const size, grown = 4 << 20, 12 << 20
	e, m := memExport("grow", size)
	ts := startServer(t, Options{}, e)
	out := tooltest.RunPythonDialog(t, growScript, func(q string) string {
		if q != "grow" {
			t.Fatalf("unexpected question %q", q)
		}
		if err := m.Grow(grown); err != nil {
			t.Fatal(err)
		}
		return strconv.Itoa(grown)
	}, ts.unixURI("grow"))
	if !strings.Contains(out, "all assertions passed") {
		t.Fatalf("script output:\n%s", out)
	}
	if err := m.Grow(size); err == nil {
		t.Error("the memory backend shrank")
	}
}
