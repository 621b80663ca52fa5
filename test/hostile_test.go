package test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/thind-storage/thind/internal/tooltest"
)

// hostileScript sends what a careful client never does, through libnbd
// with its checks off (set_strict_mode(0)) and through a raw socket, and
// asserts thind's answers. argv: the unix socket, then the sizes of the
// volumes "rw" and "ro".
const hostileScript = tooltest.HostilePy + `
import errno, socket, struct, sys
import nbd

sock = sys.argv[1]
rw = "nbd+unix:///rw?socket=" + sock
ro = "nbd+unix:///ro?socket=" + sock

# --- libnbd with strict mode off ---
h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(rw)
h.set_strict_mode(0)
size = h.get_size()
assert size == int(sys.argv[2]), size
refuse_bad_requests(h, size)
h.pread(0, 0); h.pwrite(b"", 0); h.trim(0, 0); h.zero(0, 0); h.cache(0, 0)
h.pwrite(b"y" * 4096, 0, nbd.CMD_FLAG_FUA)
h.flush()
assert h.pread(4096, 0) == b"y" * 4096, "the connection did not survive the errors"
h.shutdown()

# A read-only volume refuses every write.
h = nbd.NBD()
h.connect_uri(ro)
assert h.is_read_only()
h.set_strict_mode(0)
expect(errno.EPERM, "write to a read-only volume", h.pwrite, b"a" * 512, 0)
expect(errno.EPERM, "trim on a read-only volume", h.trim, 512, 0)
expect(errno.EPERM, "zero on a read-only volume", h.zero, 512, 0)
assert h.pread(512, 0) == bytes(512)
h.shutdown()

# --- raw sockets ---
NBDMAGIC, IHAVEOPT, REPMAGIC = 0x4e42444d41474943, 0x49484156454f5054, 0x3e889045565a9
REQ, SIMPLE = 0x25609513, 0x67446698
OPT_EXPORT_NAME, OPT_GO = 1, 7
CMD_READ, CMD_WRITE, CMD_FLUSH = 0, 1, 3

def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b

def greet(flags=3):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(sock)
    magic, opt, hflags = struct.unpack(">QQH", recvn(s, 18))
    assert magic == NBDMAGIC and opt == IHAVEOPT, "greeting"
    s.sendall(struct.pack(">I", flags))
    return s

def option(s, opt, data, magic=IHAVEOPT):
    s.sendall(struct.pack(">QII", magic, opt, len(data)) + data)

def go(s, name):
    n = name.encode()
    option(s, OPT_GO, struct.pack(">I", len(n)) + n + struct.pack(">H", 0))
    while True:
        magic, opt, typ, ln = struct.unpack(">QIII", recvn(s, 20))
        assert magic == REPMAGIC, "option reply magic %x" % magic
        recvn(s, ln)
        if typ == 1:
            return
        assert typ & (1 << 31) == 0, "GO %s refused: %x" % (name, typ)

def request(s, typ, off, length, payload=b"", flags=0, magic=REQ, cookie=7):
    s.sendall(struct.pack(">IHHQQI", magic, flags, typ, cookie, off, length) + payload)

def reply(s, cookie=7, data=0):
    magic, err, c = struct.unpack(">IIQ", recvn(s, 16))
    assert magic == SIMPLE and c == cookie, "reply magic %x cookie %d" % (magic, c)
    body = recvn(s, data) if err == 0 and data else b""
    return err, body

def expect_closed(s, what):
    # The server closes without a word (the protocol has no reply to
    # these); a reset is a close too.
    got = b""
    try:
        b = s.recv(1 << 20)
        while b:
            got += b
            b = s.recv(1 << 20)
    except ConnectionResetError:
        pass
    s.close()
    assert got == b"", "%s: the server sent %r instead of closing" % (what, got[:64])
    print("ok", what, "closed")

# Handshake violations close the connection.
s = greet(flags=0x80)
expect_closed(s, "unknown client flags")
s = greet()
option(s, OPT_GO, b"\0\0\0\0\0\0", magic=0x1122334455667788)
expect_closed(s, "bad option magic")
s = greet()
s.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, 2 << 20))
expect_closed(s, "option data above 1 MiB")
s = greet()
n = b"no-such-volume"
option(s, OPT_EXPORT_NAME, n)
expect_closed(s, "EXPORT_NAME of an unknown volume")

# Malformed requests get errors and the connection goes on.
s = greet()
go(s, "rw")
for what, typ, off, length, payload, flags, want in [
    ("unknown command", 42, 0, 4096, b"", 0, errno.EINVAL),
    ("unknown flag", CMD_READ, 0, 512, b"", 1 << 9, errno.EINVAL),
    ("read at an offset near 2^64", CMD_READ, (1 << 64) - 10, 4096, b"", 0, errno.EINVAL),
    ("read above the maximum payload", CMD_READ, 0, 40 << 20, b"", 0, errno.EINVAL),
    ("write past the end, its payload drained", CMD_WRITE, int(sys.argv[2]), 4096, b"p" * 4096, 0, errno.ENOSPC),
    ("write above the maximum payload, drained", CMD_WRITE, 0, 33 << 20, b"q" * (33 << 20), 0, errno.EINVAL),
]:
    request(s, typ, off, length, payload, flags)
    err, _ = reply(s)
    assert err == want, "%s: error %d, want %d" % (what, err, want)
    print("ok", what, errno.errorcode[want])
request(s, CMD_WRITE, 8192, 5, b"hello")
assert reply(s) == (0, b"")
request(s, CMD_READ, 8192, 5)
assert reply(s, data=5) == (0, b"hello"), "read after the errors"
# Protocol violations end the connection.
request(s, CMD_READ, 0, 512, magic=0x12345678)
expect_closed(s, "bad request magic")

s = greet()
go(s, "rw")
option(s, OPT_GO, b"\0" * 12)
expect_closed(s, "an option after GO")

s = greet()
go(s, "rw")
request(s, CMD_WRITE, 0, 100 << 20)
expect_closed(s, "a write above the drain limit")

s = greet()
go(s, "ro")
request(s, CMD_WRITE, 0, 512, b"r" * 512)
assert reply(s)[0] == errno.EPERM, "write to ro"
request(s, CMD_FLUSH, 0, 0)
assert reply(s)[0] == 0
s.close()
print("all assertions passed")
`

func TestHostileRequestsGetTheProtocolsAnswersWhileAnotherClientWorks(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "rw", "--size", "64M")
	d.mustCLI("volume", "create", "ro", "--size", "1M", "--read-only")
	d.mustCLI("volume", "create", "bystander", "--size", "16M")

	// A well-behaved client writes and reads back stamped blocks the
	// whole time on one connection.
	c := d.dial(t, "bystander")
	stop := make(chan struct{})
	var ops atomic.Int64
	var wg sync.WaitGroup
	var bystanderErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf, got := make([]byte, 4096), make([]byte, 4096)
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			off := (i % 4096) * 4096
			copy(buf, fmt.Sprintf("block %d write %d", off, i))
			if err := c.pwrite(buf, off, 0); err != nil {
				bystanderErr = fmt.Errorf("write %d: %w", i, err)
				return
			}
			if err := c.pread(got, off); err != nil {
				bystanderErr = fmt.Errorf("read %d: %w", i, err)
				return
			}
			if !bytes.Equal(buf, got) {
				bystanderErr = fmt.Errorf("read back %q, wrote %q", got[:32], buf[:32])
				return
			}
			ops.Add(1)
		}
	}()

	before := ops.Load()
	out := tooltest.RunPython(t, hostileScript, d.sock, fmt.Sprint(64<<20))
	close(stop)
	wg.Wait()
	t.Log(out)
	if !strings.Contains(out, "all assertions passed") {
		t.Fatalf("script output:\n%s", out)
	}
	if bystanderErr != nil {
		t.Fatalf("the other client failed: %v", bystanderErr)
	}
	if n := ops.Load() - before; n == 0 {
		t.Fatal("the other client made no progress while the script ran")
	}
	t.Logf("the other client wrote and read back %d blocks meanwhile", ops.Load())

	// The metrics saw the errors and the broken handshakes.
	s := d.scrape()
	for _, series := range []string{
		`thind_volume_errors_total{errno="EINVAL",volume="rw"}`,
		`thind_volume_errors_total{errno="ENOSPC",volume="rw"}`,
		`thind_volume_errors_total{errno="EPERM",volume="ro"}`,
	} {
		if metric(s, series) <= 0 {
			t.Errorf("%s = %v after the script", series, metric(s, series))
		}
	}
	if !strings.Contains(s, "thind_nbd_handshake_failures_total{") {
		t.Error("no handshake failures counted")
	}
	// And the daemon still serves new clients.
	tooltest.Run(t, "nbdinfo", pkgLibnbd, "--can", "connect", d.tcpURI("rw"))
}
