package nbd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/tooltest"
)

// Interop tests with the real clients: libnbd's nbdinfo, nbdcopy and
// Python bindings, qemu-img, qemu-io and fio's nbd engine. Each serves the
// in-memory backend, which is also the oracle for what the clients see.

const (
	pkgLibnbd = "libnbd-bin"
	pkgQemu   = "qemu-utils"
	pkgFio    = "fio"
)

func TestNBDInfoListsExportsWithDescriptions(t *testing.T) {
	a, _ := memExport("alpha", 1<<20)
	b, _ := memExport("beta", 2<<20)
	ro, _ := memExport("gamma", 1<<20)
	ro.ReadOnly = true
	ts := startServer(t, Options{}, a, b, ro)
	for _, uri := range []string{ts.unixURI(""), "nbd://" + ts.tcp} {
		out := tooltest.Run(t, "nbdinfo", pkgLibnbd, "--list", "--json", uri)
		var list struct {
			Exports []struct {
				Name        string   `json:"export-name"`
				Description string   `json:"description"`
				Size        int64    `json:"export-size"`
				Contexts    []string `json:"contexts"`
				ReadOnly    bool     `json:"is_read_only"`
			} `json:"exports"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("nbdinfo --list --json: %v\n%s", err, out)
		}
		got := fmt.Sprintf("%+v", list.Exports)
		want := "[{Name:alpha Description:memory volume alpha Size:1048576 Contexts:[base:allocation] ReadOnly:false} " +
			"{Name:beta Description:memory volume beta Size:2097152 Contexts:[base:allocation] ReadOnly:false} " +
			"{Name:gamma Description:memory volume gamma Size:1048576 Contexts:[base:allocation] ReadOnly:true}]"
		if got != want {
			t.Errorf("%s: exports\n got %s\nwant %s", uri, got, want)
		}
	}
	// The plain text form, as a human runs it.
	out := tooltest.Run(t, "nbdinfo", pkgLibnbd, "--list", ts.unixURI(""))
	for _, s := range []string{`export="alpha":`, "description: memory volume beta", "is_read_only: true"} {
		if !strings.Contains(out, s) {
			t.Errorf("nbdinfo --list lacks %q:\n%s", s, out)
		}
	}
}

func TestNBDInfoFeatureProbes(t *testing.T) {
	rw, _ := memExport("rw", 1<<20)
	ro, _ := memExport("ro", 1<<20)
	ro.ReadOnly = true
	def, _ := memExport(DefaultExportName, 3<<20)
	ts := startServer(t, Options{}, rw, ro, def)
	for _, uri := range []string{ts.unixURI("rw"), ts.tcpURI("rw")} {
		for _, feature := range []string{"trim", "zero", "fua", "flush", "multi-conn", "fast-zero", "cache", "df", "write", "structured-reply"} {
			if !tooltest.NBDInfoProbe(t, uri, "--can", feature) {
				t.Errorf("%s: --can %s is false", uri, feature)
			}
		}
		if tooltest.NBDInfoProbe(t, uri, "--is", "read-only") {
			t.Errorf("%s: --is read-only", uri)
		}
	}
	if !tooltest.NBDInfoProbe(t, ts.unixURI("ro"), "--is", "read-only") {
		t.Error("ro: --is read-only is false")
	}
	for _, feature := range []string{"trim", "zero", "write", "fast-zero"} {
		if tooltest.NBDInfoProbe(t, ts.unixURI("ro"), "--can", feature) {
			t.Errorf("ro: --can %s is true", feature)
		}
	}
	// The empty name reaches the default export.
	if out := strings.TrimSpace(tooltest.Run(t, "nbdinfo", pkgLibnbd, "--size", ts.unixURI(""))); out != strconv.Itoa(3<<20) {
		t.Errorf("default export size %q", out)
	}
	// An unknown export is an error (libnbd turns ERR_UNKNOWN into
	// ENOENT); the server carries on.
	if out, errOut, err := tooltest.RunErr(t, "nbdinfo", pkgLibnbd, ts.unixURI("nope")); err == nil || !strings.Contains(out+errOut, "No such file or directory for export: nope") {
		t.Errorf("unknown export: %v\n%s", err, out)
	}
	if !tooltest.NBDInfoProbe(t, ts.unixURI("rw"), "--can", "connect") {
		t.Error("server stopped serving after an unknown export")
	}
}

// nbdinfoMap returns nbdinfo --map's extents as [offset, length, type].
func nbdinfoMap(t *testing.T, uri string) [][3]int64 {
	t.Helper()
	out := tooltest.Run(t, "nbdinfo", pkgLibnbd, "--map", "--json", uri)
	var m []struct {
		Offset int64 `json:"offset"`
		Length int64 `json:"length"`
		Type   int64 `json:"type"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("nbdinfo --map --json: %v\n%s", err, out)
	}
	var ext [][3]int64
	for _, e := range m {
		ext = append(ext, [3]int64{e.Offset, e.Length, e.Type})
	}
	return ext
}

// backendMap is what the backend itself reports, in nbdinfo's form.
func backendMap(t *testing.T, be Backend) [][3]int64 {
	t.Helper()
	var out [][3]int64
	var off int64
	for off < be.Size() {
		ext, err := be.BlockStatus(t.Context(), off, be.Size()-off, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ext {
			if k := len(out); k > 0 && out[k-1][2] == int64(e.Flags) {
				out[k-1][1] += e.Length
			} else {
				out = append(out, [3]int64{off, e.Length, int64(e.Flags)})
			}
			off += e.Length
		}
	}
	return out
}

func TestNBDInfoMapShowsTheBackendsAllocation(t *testing.T) {
	const size = 64 << 20
	e, mem := memExport("vol0", size)
	ts := startServer(t, Options{}, e)
	uri := ts.unixURI("vol0")
	check := func(what string, want [][3]int64) {
		t.Helper()
		got := nbdinfoMap(t, uri)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: nbdinfo --map\n got %v\nwant %v", what, got, want)
		}
		if oracle := backendMap(t, mem); fmt.Sprint(got) != fmt.Sprint(oracle) {
			t.Errorf("%s: nbdinfo --map %v differs from the backend's %v", what, got, oracle)
		}
	}
	check("fresh", [][3]int64{{0, size, 3}})
	nbdsh := `
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"\xab" * 65536, 1 << 20)
h.pwrite(b"\xcd" * 100, 5 << 20)
h.zero(1 << 20, 8 << 20, nbd.CMD_FLAG_NO_HOLE)
h.shutdown()
`
	tooltest.RunPython(t, nbdsh, uri)
	check("after writes", [][3]int64{{0, 1 << 20, 3}, {1 << 20, 65536, 0}, {1<<20 + 65536, 4<<20 - 65536, 3},
		{5 << 20, 4096, 0}, {5<<20 + 4096, 3<<20 - 4096, 3}, {8 << 20, 1 << 20, 2}, {9 << 20, size - 9<<20, 3}})
	tooltest.RunPython(t, `
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.trim(1 << 20, 1 << 20)
h.trim(1 << 20, 8 << 20)
h.trim(4096, 5 << 20)
h.shutdown()
`, uri)
	check("after trims", [][3]int64{{0, size, 3}})
	if out := tooltest.Run(t, "nbdinfo", pkgLibnbd, "--map", "--totals", uri); !strings.Contains(out, "100.0") {
		t.Errorf("--totals:\n%s", out)
	}
}

// randomImage writes a raw image with random data, zero runs and holes.
func randomImage(t *testing.T, path string, size int64, seed uint64) []byte {
	t.Helper()
	rng := randtest.Stream(seed, 1)
	img := make([]byte, size)
	for off := int64(0); off < size; off += 256 << 10 {
		if rng.IntN(3) == 0 {
			continue // leave a zero run
		}
		n := 1 + rng.Int64N(256<<10)
		for i := off; i < min(off+n, size); i++ {
			img[i] = byte(rng.Uint32())
		}
	}
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestQemuImgConvertRoundTrip(t *testing.T) {
	const size = 32 << 20
	e, mem := memExport("vol0", size)
	ts := startServer(t, Options{}, e)
	dir := t.TempDir()
	src, back := filepath.Join(dir, "src.img"), filepath.Join(dir, "back.img")
	seed := randtest.Seed(t)
	img := randomImage(t, src, size, seed)

	tooltest.Run(t, "qemu-img", pkgQemu, "convert", "-n", "-f", "raw", "-O", "raw", src, ts.unixURI("vol0"))
	if out := tooltest.Run(t, "qemu-img", pkgQemu, "compare", "-f", "raw", "-F", "raw", src, ts.tcpURI("vol0")); !strings.Contains(out, "Images are identical") {
		t.Errorf("qemu-img compare: %s", out)
	}
	tooltest.Run(t, "qemu-img", pkgQemu, "convert", "-f", "raw", "-O", "raw", ts.tcpURI("vol0"), back)
	got, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) {
		t.Fatal("image read back from the export differs from the source")
	}
	// convert skips zeros: the export is allocated only where the source
	// had data (4 KiB pages).
	if mem.Allocated() >= size {
		t.Errorf("export fully allocated (%d bytes): zeros were written", mem.Allocated())
	}

	// qemu-img map agrees with the backend's allocation.
	out := tooltest.Run(t, "qemu-img", pkgQemu, "map", "--output=json", "-f", "raw", ts.unixURI("vol0"))
	var qm []struct {
		Start, Length int64
		Data, Zero    bool
	}
	if err := json.Unmarshal([]byte(out), &qm); err != nil {
		t.Fatalf("qemu-img map: %v\n%s", err, out)
	}
	var qemuMap [][3]int64
	for _, m := range qm {
		typ := int64(0)
		if !m.Data {
			typ |= int64(ExtentHole)
		}
		if m.Zero {
			typ |= int64(ExtentZero)
		}
		if k := len(qemuMap); k > 0 && qemuMap[k-1][2] == typ {
			qemuMap[k-1][1] += m.Length
			continue
		}
		qemuMap = append(qemuMap, [3]int64{m.Start, m.Length, typ})
	}
	if want := backendMap(t, mem); fmt.Sprint(qemuMap) != fmt.Sprint(want) {
		t.Errorf("qemu-img map %v\nbackend      %v", qemuMap, want)
	}
}

func TestQemuIOCommands(t *testing.T) {
	e, mem := memExport("vol0", 16<<20)
	ts := startServer(t, Options{}, e)
	for _, uri := range []string{ts.unixURI("vol0"), ts.tcpURI("vol0")} {
		out := tooltest.Run(t, "qemu-io", pkgQemu, "-f", "raw",
			"-c", "write -P 0xab 0 1M", "-c", "read -P 0xab 0 1M",
			"-c", "write -z 1M 1M", "-c", "read -P 0 1M 1M",
			"-c", "write -P 0xcd 2M 1M", "-c", "write -z -u 2M 1M", "-c", "read -P 0 2M 1M",
			"-c", "discard 3M 1M",
			"-c", "write -f -P 0x44 4M 64k", "-c", "read -P 0x44 4M 64k", "-c", "flush",
			"-c", "aio_write -P 0x11 8M 64k", "-c", "aio_write -P 0x22 9M 64k", "-c", "aio_flush",
			"-c", "read -P 0x11 8M 64k", "-c", "read -P 0x22 9M 64k",
			"-c", "read -P 0 12M 1M",
			uri)
		if strings.Contains(out, "Pattern verification failed") || strings.Contains(out, "failed") {
			t.Fatalf("qemu-io on %s:\n%s", uri, out)
		}
		if n := strings.Count(out, "wrote "); n != 7 {
			t.Errorf("qemu-io: %d writes reported, want 7:\n%s", n, out)
		}
		if n := strings.Count(out, "read "); n != 7 {
			t.Errorf("qemu-io: %d reads reported, want 7:\n%s", n, out)
		}
	}
	// write -z without -u kept 1M..2M allocated (NO_HOLE); -u punched.
	ext, _ := mem.BlockStatus(t.Context(), 1<<20, 2<<20, 10, nil)
	if fmt.Sprint(ext) != fmt.Sprint([]Extent{{1 << 20, ExtentZero}, {1 << 20, ExtentHole | ExtentZero}}) {
		t.Errorf("after write -z / write -z -u: %v", ext)
	}
}

func TestNBDCopyWithMultipleConnections(t *testing.T) {
	const size = 24 << 20
	e, _ := memExport("vol0", size)
	ts := startServer(t, Options{}, e)
	dir := t.TempDir()
	src, out := filepath.Join(dir, "src.img"), filepath.Join(dir, "out.img")
	img := randomImage(t, src, size, 99)

	before := ts.Stats().ConnectionsTotal
	tooltest.Run(t, "nbdcopy", pkgLibnbd, "-C", "4", "-T", "4", "--flush", src, ts.unixURI("vol0"))
	if n := ts.Stats().ConnectionsTotal - before; n < 4 {
		t.Errorf("nbdcopy -C 4 opened %d connections: multi-conn not used", n)
	}
	tooltest.Run(t, "nbdcopy", pkgLibnbd, "-C", "4", "-T", "4", ts.tcpURI("vol0"), out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) {
		t.Fatal("nbdcopy round trip differs")
	}
	st := ts.Stats().Exports["vol0"]
	if st.Ops["flush"].Requests == 0 || st.Ops["block_status"].Requests == 0 || st.Ops["write"].Bytes == 0 {
		t.Errorf("nbdcopy did not flush, query block status or write: %+v", st.Ops)
	}
}

func TestFioVerifiesDataAtQueueDepth32(t *testing.T) {
	e, _ := memExport("vol0", 64<<20)
	ts := startServer(t, Options{}, e)
	if out := tooltest.Run(t, "fio", pkgFio, "--enghelp"); !strings.Contains(out, "nbd") {
		t.Fatalf("fio lacks the nbd engine: install a fio built with libnbd\n%s", out)
	}
	for _, uri := range []string{ts.unixURI("vol0"), ts.tcpURI("vol0")} {
		out := tooltest.Run(t, "fio", pkgFio, "--name=verify", "--ioengine=nbd", "--uri="+uri,
			"--rw=randwrite", "--bs=4k", "--iodepth=32", "--size=16M",
			"--verify=crc32c", "--do_verify=1", "--verify_fatal=1")
		if !strings.Contains(out, "err= 0") || strings.Contains(out, "verify: bad") {
			t.Fatalf("fio on %s:\n%s", uri, out)
		}
		out = tooltest.Run(t, "fio", pkgFio, "--name=mixed", "--ioengine=nbd", "--uri="+uri,
			"--rw=randrw", "--bs=64k", "--iodepth=32", "--numjobs=2", "--size=16M", "--group_reporting")
		if !strings.Contains(out, "err= 0") {
			t.Fatalf("fio randrw on %s:\n%s", uri, out)
		}
	}
}

func TestQemuNBDListsExportsAndContexts(t *testing.T) {
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{}, e)
	out := tooltest.Run(t, "qemu-nbd", pkgQemu, "--list", "-k", ts.sock)
	for _, s := range []string{"export: 'vol0'", "description: memory volume vol0", "size:  1048576", "base:allocation", "min block: 1", "opt block: 4096", "max block: 33554432"} {
		if !strings.Contains(out, s) {
			t.Errorf("qemu-nbd --list lacks %q:\n%s", s, out)
		}
	}
}

// hostileScript drives libnbd with its own checks off (set_strict_mode(0))
// to send requests a careful client never sends, and asserts the server's
// answers. argv: the read-write URI, the read-only URI.
const hostileScript = tooltest.HostilePy + `
import errno, sys
import nbd

rw, ro = sys.argv[1], sys.argv[2]

h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(rw)
h.set_strict_mode(0)
size = h.get_size()
refuse_bad_requests(h, size)

# Zero-length requests are harmless no-ops.
h.pread(0, 0); h.pwrite(b"", 0); h.trim(0, 0); h.zero(0, 0); h.cache(0, 0)

# FAST_ZERO that cannot be fast fails at once, leaving the data alone.
h.pwrite(b"\x11" * 8192, 1 << 20)
expect(errno.ENOTSUP, "FAST_ZERO with NO_HOLE", h.zero, 8192, 1 << 20, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE)
assert h.pread(8192, 1 << 20) == b"\x11" * 8192, "a refused FAST_ZERO changed data"
h.zero(8192, 1 << 20, nbd.CMD_FLAG_FAST_ZERO)
assert h.pread(8192, 1 << 20) == bytes(8192)

r = []
h.block_status(1 << 20, 0, lambda m, o, e, err: r.append((m, e)), nbd.CMD_FLAG_REQ_ONE)
assert len(r) == 1 and len(r[0][1]) == 2 and r[0][1][0] <= 1 << 20, r

h.pwrite(b"y" * 4096, 0, nbd.CMD_FLAG_FUA)
h.flush()
assert h.pread(4096, 0) == b"y" * 4096, "the connection did not survive the errors"
h.shutdown()

# DF is refused without structured replies (simple replies only, as the
# kernel negotiates).
h = nbd.NBD()
h.set_request_structured_replies(False)
h.connect_uri(rw)
assert not h.get_structured_replies_negotiated()
assert not h.can_df()
h.set_strict_mode(0)
expect(errno.EINVAL, "DF without structured replies", h.pread, 512, 0, nbd.CMD_FLAG_DF)
h.pwrite(b"x" * 4096, 0)
assert h.pread(4096, 0) == b"x" * 4096
h.shutdown()

# A read-only export refuses every write.
h = nbd.NBD()
h.connect_uri(ro)
assert h.is_read_only()
h.set_strict_mode(0)
expect(errno.EPERM, "write to a read-only export", h.pwrite, b"a" * 512, 0)
expect(errno.EPERM, "trim on a read-only export", h.trim, 512, 0)
expect(errno.EPERM, "zero on a read-only export", h.zero, 512, 0)
h.pread(512, 0)
h.shutdown()

# Option mode: errors during negotiation leave it usable.
h = nbd.NBD()
h.set_opt_mode(True)
h.connect_uri(rw)
h.set_export_name("nope")
expect(errno.ENOENT, "INFO for an unknown export", h.opt_info)
names = []
h.opt_list(lambda name, desc: names.append(name))
assert names == ["ro", "rw"], names
h.set_export_name("rw")
h.opt_go()
h.pread(1, 0)
h.shutdown()

# Multi-conn: a flush on one connection covers a write completed on
# another, and the data is visible there.
a, b = nbd.NBD(), nbd.NBD()
a.connect_uri(rw)
b.connect_uri(rw)
assert a.can_multi_conn() and b.can_multi_conn()
a.pwrite(b"m" * 4096, 8192)
b.flush()
assert b.pread(4096, 8192) == b"m" * 4096
a.shutdown()
b.shutdown()
print("all assertions passed")
`

func TestLibnbdHostileRequests(t *testing.T) {
	rw, _ := memExport("rw", 64<<20)
	ro, _ := memExport("ro", 1<<20)
	ro.ReadOnly = true
	ts := startServer(t, Options{}, rw, ro)
	out := tooltest.RunPython(t, hostileScript, ts.unixURI("rw"), ts.unixURI("ro"))
	if !strings.Contains(out, "all assertions passed") {
		t.Fatalf("script output:\n%s", out)
	}
	t.Log(out)
	// Another client is still served.
	tooltest.Run(t, "nbdinfo", pkgLibnbd, "--can", "connect", ts.tcpURI("rw"))
}

// TestLibnbdNegotiatesTheBestReplyFormat checks what the installed libnbd
// negotiates: extended headers from libnbd 1.18, structured replies before
// (Debian 12 ships 1.14, without extended headers; the raw Go client in
// TestExtendedHeaders covers them). Either way block status and I/O work.
func TestLibnbdNegotiatesTheBestReplyFormat(t *testing.T) {
	e, _ := memExport("vol0", 4<<20)
	ts := startServer(t, Options{}, e)
	out := tooltest.RunPython(t, `
import sys
import nbd
h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(sys.argv[1])
ext = hasattr(h, "get_extended_headers_negotiated") and h.get_extended_headers_negotiated()
assert ext or h.get_structured_replies_negotiated()
h.pwrite(b"z" * 4096, 65536)
seen = []
h.block_status(4 << 20, 0, lambda m, o, e, err: seen.append(e))
assert seen == [[65536, 3, 4096, 0, (4 << 20) - 69632, 3]], seen
assert h.pread(4096, 65536) == b"z" * 4096
print(h.get_version(), "extended" if ext else "structured")
`, ts.unixURI("vol0"))
	var major, minor, patch int
	var format string
	if _, err := fmt.Sscanf(out, "%d.%d.%d %s", &major, &minor, &patch, &format); err != nil {
		t.Fatalf("script output %q: %v", out, err)
	}
	want := "structured"
	if major > 1 || minor >= 18 {
		want = "extended"
	}
	if format != want {
		t.Errorf("libnbd %d.%d negotiated %s replies, want %s", major, minor, format, want)
	}
	t.Logf("libnbd %d.%d uses %s replies", major, minor, format)
}

// TestServingAFile exports a sparse file through the File backend: writes
// from qemu-io land in the file, discards punch holes, and nbdinfo --map
// reports the file's own holes (SEEK_DATA/SEEK_HOLE).
func TestServingAFile(t *testing.T) {
	const size = 16 << 20
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	fb, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	ts := startServer(t, Options{}, &Export{Name: "file", Backend: fb})
	uri := ts.unixURI("file")

	out := tooltest.Run(t, "qemu-io", pkgQemu, "-f", "raw",
		"-c", "write -P 0x61 1M 2M", "-c", "write -P 0x62 8M 64k", "-c", "discard 2M 1M", "-c", "flush", uri)
	if strings.Contains(out, "failed") {
		t.Fatalf("qemu-io:\n%s", out)
	}
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	copy(want[1<<20:2<<20], bytes.Repeat([]byte{0x61}, 1<<20))
	copy(want[8<<20:], bytes.Repeat([]byte{0x62}, 64<<10))
	if !bytes.Equal(img, want) {
		t.Fatal("file contents differ from what qemu-io wrote")
	}
	got := nbdinfoMap(t, uri)
	if oracle := backendMap(t, fb); fmt.Sprint(got) != fmt.Sprint(oracle) {
		t.Errorf("nbdinfo --map %v, file %v", got, oracle)
	}
	if fmt.Sprint(got) != fmt.Sprint([][3]int64{{0, 1 << 20, 3}, {1 << 20, 1 << 20, 0}, {2 << 20, 6 << 20, 3}, {8 << 20, 64 << 10, 0}, {8<<20 + 64<<10, size - 8<<20 - 64<<10, 3}}) {
		t.Errorf("nbdinfo --map %v: holes not where the file has them", got)
	}
}
