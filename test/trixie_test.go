package test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/tooltest"
)

// Debian 13's clients (libnbd 1.22, qemu 10) run in a chroot
// (tooltest.Trixie) and reach the daemon over TCP on 127.0.0.1: they
// negotiate NBD extended headers, which Debian 12's libnbd 1.14 cannot,
// so these tests cover 64-bit BLOCK_STATUS with the tools users run.

// trixieExtendedPy connects with each meta context in argv[2:] and
// prints libnbd's version and whether extended headers were negotiated.
const trixieExtendedPy = `
import sys
import nbd
h = nbd.NBD()
for c in sys.argv[2:]:
    h.add_meta_context(c)
h.connect_uri(sys.argv[1])
assert h.get_extended_headers_negotiated(), "extended headers not negotiated"
assert h.get_structured_replies_negotiated()
for c in sys.argv[2:]:
    assert h.can_meta_context(c), c
print(h.get_version(), "extended")
h.shutdown()
`

// needTrixieExtended fails unless the chroot's libnbd is 1.2x and
// negotiates extended headers with the daemon on uri for contexts.
func needTrixieExtended(t *testing.T, tx *tooltest.Chroot, uri string, contexts ...string) {
	t.Helper()
	out := tx.RunPython(t, trixieExtendedPy, append([]string{uri}, contexts...)...)
	if !strings.HasPrefix(out, "1.2") || !strings.Contains(out, "extended") {
		t.Fatalf("trixie libnbd: %q, want version 1.2x with extended headers", out)
	}
}

// TestTrixieDirtyBitmapsWithExtendedHeaders runs a random workload with
// snapshots, then reads qemu:dirty-bitmap:BASE and base:allocation with
// Debian 13's nbdinfo (libnbd 1.22, extended headers negotiated) and
// checks them against the model, thind volume diff, Debian 12's nbdinfo
// (libnbd 1.14, structured replies only) and, with the daemon stopped,
// thin_delta.
func TestTrixieDirtyBitmapsWithExtendedHeaders(t *testing.T) {
	tx := tooltest.Trixie(t)
	randtest.Each(t, 2, func(t *testing.T, seed uint64) {
		rng := randtest.FromSeed(seed)
		d := startDaemon(t, "--data-size", "256M", "--metadata-size", "16M")
		const size = 32 << 20
		m := snapshotChain(t, d, rng, size)

		needTrixieExtended(t, tx, d.tcpURI("vm"), "base:allocation", "qemu:dirty-bitmap:s1")
		// nbdinfo says so too: its summary names the extended headers.
		if info := tx.Run(t, "nbdinfo", d.tcpURI("vm")); !strings.Contains(info, "using extended packets") {
			t.Fatalf("trixie nbdinfo does not report extended headers:\n%s", info)
		}
		pairs := [][2]string{{"s1", "vm"}, {"s2", "vm"}, {"s1", "s2"}, {"s2", "s1"}, {"vm", "s1"}}
		bitmaps := map[[2]string][]control.DiffRange{}
		for _, p := range pairs {
			want := m.dirty(p[0], p[1], size)
			if diff, _ := volumeDiff(t, d, p[0], p[1], 0); !slices.Equal(diff, want) {
				t.Fatalf("volume diff %s %s:\n got %v\nwant %v", p[0], p[1], diff, want)
			}
			got := parseDirtyMap(t, tx.Run(t, "nbdinfo", "--map=qemu:dirty-bitmap:"+p[0], "--json", d.tcpURI(p[1])))
			if !slices.Equal(got, dirtyOnly(want)) {
				t.Fatalf("nbdinfo 1.22 --map=qemu:dirty-bitmap:%s on %s:\n got %v\nwant %v", p[0], p[1], got, dirtyOnly(want))
			}
			if old := dirtyMap(t, d, p[0], p[1]); !slices.Equal(old, got) {
				t.Fatalf("nbdinfo 1.14 and 1.22 differ on qemu:dirty-bitmap:%s of %s:\n1.14 %v\n1.22 %v", p[0], p[1], old, got)
			}
			bitmaps[p] = got
		}
		for _, vol := range []string{"vm", "s1", "s2"} {
			mapped := provisioned{}
			for b := range m.vols[vol] {
				mapped[b] = true
			}
			want := mapped.extents(size)
			got := parseNbdinfoMap(t, tx.Run(t, "nbdinfo", "--map", "--json", d.tcpURI(vol)))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("nbdinfo 1.22 --map on %s:\n got %v\nwant %v", vol, got, want)
			}
			if old := nbdinfoMap(t, d.unixURI(vol)); fmt.Sprint(old) != fmt.Sprint(got) {
				t.Fatalf("nbdinfo 1.14 and 1.22 --map differ on %s:\n1.14 %v\n1.22 %v", vol, old, got)
			}
		}
		// And dirty exactly where thin_delta reports a difference.
		ids := map[string]uint64{}
		for _, v := range d.volumes() {
			ids[v.Name] = v.DevID
		}
		d.stop()
		meta := filepath.Join(d.dir, "metadata")
		for _, p := range pairs {
			if td := thinDeltaDirty(t, meta, ids[p[0]], ids[p[1]]); !slices.Equal(td, bitmaps[p]) {
				t.Fatalf("thin_delta %s %s:\n got %v\nwant nbdinfo 1.22's %v", p[0], p[1], td, bitmaps[p])
			}
		}
	})
}

// TestTrixieQemu writes with qemu-io 10 and reads back with Debian 12's
// qemu-io 7.2 and the reverse, then checks qemu-img 10 map against the
// blocks written and against qemu-img 7.2's map.
func TestTrixieQemu(t *testing.T) {
	tx := tooltest.Trixie(t)
	d := startDaemon(t, tinyPool...)
	d.mustCLI("volume", "create", "q", "--size", "32M")
	uri := d.tcpURI("q")
	if v := tx.Run(t, "qemu-io", "--version"); !strings.Contains(v, "version 10.") {
		t.Fatalf("trixie qemu-io is not qemu 10: %s", v)
	}
	out := tx.Run(t, "qemu-io", "-f", "raw", "-c", "write -P 0xa1 1M 256k", "-c", "write -P 0xa2 5000k 8k", "-c", "flush", uri)
	if !strings.Contains(out, "wrote 262144/262144") || !strings.Contains(out, "wrote 8192/8192") {
		t.Fatalf("qemu-io 10 write:\n%s", out)
	}
	tooltest.Run(t, "qemu-io", pkgQemu, "-f", "raw", "-c", "read -P 0xa1 1M 256k", "-c", "read -P 0xa2 5000k 8k", "-c", "read -P 0 0 1M", d.unixURI("q"))
	tooltest.Run(t, "qemu-io", pkgQemu, "-f", "raw", "-c", "write -P 0xb3 20M 64k", "-c", "flush", d.unixURI("q"))
	out = tx.Run(t, "qemu-io", "-f", "raw", "-c", "read -P 0xb3 20M 64k", "-c", "read -P 0xa1 1M 256k", "-c", "read -P 0 1280k 64k", uri)
	if strings.Count(out, "read ") != 3 || strings.Contains(out, "Pattern verification failed") {
		t.Fatalf("qemu-io 10 read:\n%s", out)
	}

	mapped := provisioned{}
	mapped.touch(1<<20, 256<<10)
	mapped.touch(5000<<10, 8<<10)
	mapped.touch(20<<20, 64<<10)
	want := mapped.extents(32 << 20)
	got := parseQemuImgMap(t, tx.Run(t, "qemu-img", "map", "--output=json", "-f", "raw", uri))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("qemu-img 10 map:\n got %v\nwant %v", got, want)
	}
	if old := qemuImgMap(t, d.unixURI("q")); fmt.Sprint(old) != fmt.Sprint(got) {
		t.Fatalf("qemu-img 7.2 and 10 map differ:\n 7.2 %v\n  10 %v", old, got)
	}
}

// TestTrixieBlockStatus64 asks for the block status of a 6 GiB volume in
// one 64-bit request: the hole between its first and last block is one
// extent longer than 4 GiB, which only extended headers can carry.
func TestTrixieBlockStatus64(t *testing.T) {
	tx := tooltest.Trixie(t)
	d := startDaemon(t, tinyPool...)
	d.mustCLI("volume", "create", "big", "--size", "6G")
	c := d.dial(t, "big")
	const size = 6 << 30
	block := make([]byte, blockSize)
	for _, off := range []uint64{0, size - blockSize} {
		if err := c.pwrite(block, off, 0); err != nil { // zeros, but written: mapped
			t.Fatal(err)
		}
	}
	c.close()
	out := tx.RunPython(t, `
import sys
import nbd
h = nbd.NBD()
h.add_meta_context("base:allocation")
h.connect_uri(sys.argv[1])
assert h.get_extended_headers_negotiated()
size = h.get_size()
got = []
h.block_status_64(size, 0, lambda m, o, e, err: got.extend(e))
print(size, got)
B = 65536
assert got == [(B, 0), (size - 2 * B, 3), (B, 0)], got
assert size - 2 * B > 1 << 32
print("all assertions passed")
`, d.tcpURI("big"))
	if !strings.Contains(out, "all assertions passed") {
		t.Fatalf("script output:\n%s", out)
	}
}
