package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/tooltest"
)

// blockModel is which data each block of each volume holds: a token per
// mapped block, shared by a snapshot and its origin until either writes
// the block (a write to a shared block breaks sharing, one to a block of
// its own overwrites it in place). Two volumes differ at a block exactly
// where their tokens differ, a missing token included.
type blockModel struct {
	vols map[string]map[int64]int
	next int
}

func (m *blockModel) write(vol string, b int64) {
	tok, ok := m.vols[vol][b]
	if ok {
		for name, blocks := range m.vols {
			if name != vol && blocks[b] == tok {
				ok = false // shared: the write goes to a new block
				break
			}
		}
	}
	if !ok {
		m.next++
		m.vols[vol][b] = m.next
	}
}

func (m *blockModel) snapshot(origin, name string) {
	m.vols[name] = cloneBlocks(m.vols[origin])
}

func cloneBlocks(src map[int64]int) map[int64]int {
	dst := make(map[int64]int, len(src))
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

// dirty is where target differs from base, as DiffRanges by block, merged.
func (m *blockModel) dirty(base, target string, size int64) []control.DiffRange {
	var out []control.DiffRange
	for b := int64(0); b*blockSize < size; b++ {
		tb, inB := m.vols[base][b]
		tt, inT := m.vols[target][b]
		if tb == tt && inB == inT {
			continue
		}
		state := control.DiffChanged
		if inB && !inT {
			state = control.DiffUnmapped
		}
		off := uint64(b * blockSize)
		if k := len(out); k > 0 && out[k-1].Offset+out[k-1].Length == off && out[k-1].State == state {
			out[k-1].Length += blockSize
			continue
		}
		out = append(out, control.DiffRange{Offset: off, Length: blockSize, State: state})
	}
	return out
}

// workload writes and discards whole blocks of vol at random, through NBD.
func (m *blockModel) workload(t *testing.T, d *daemon, rng *rand.Rand, vol string, size int64, ops int) {
	c := d.dial(t, vol)
	buf := make([]byte, 4*blockSize)
	for range ops {
		b := rng.Int64N(size/blockSize - 4)
		n := 1 + rng.Int64N(4)
		if rng.IntN(4) == 0 {
			if err := c.trim(uint64(b*blockSize), uint32(n*blockSize)); err != nil {
				t.Fatal(err)
			}
			for i := b; i < b+n; i++ {
				delete(m.vols[vol], i)
			}
			continue
		}
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if err := c.pwrite(buf[:n*blockSize], uint64(b*blockSize), 0); err != nil {
			t.Fatal(err)
		}
		for i := b; i < b+n; i++ {
			m.write(vol, i)
		}
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	c.close()
}

// volumeDiff runs thind volume diff --json and returns its ranges and
// header, failing unless the stream is complete.
// An empty base lists target's allocated ranges.
func volumeDiff(t *testing.T, d *daemon, base, target string, offset uint64) ([]control.DiffRange, control.DiffHeader) {
	t.Helper()
	args := []string{"volume", "diff", base, target, "--json", "--offset", strconv.FormatUint(offset, 10)}
	if base == "" {
		args = append(args[:2], args[3:]...)
	}
	out := d.mustCLI(args...)
	var ranges []control.DiffRange
	var h control.DiffHeader
	done := false
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l control.DiffLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("diff line %q: %v", line, err)
		}
		switch {
		case l.DiffHeader != nil:
			h = *l.DiffHeader
		case l.DiffRange != nil:
			ranges = append(ranges, *l.DiffRange)
		case l.DiffEnd != nil:
			done = true
		}
	}
	if !done {
		t.Fatalf("diff %s %s: no end line:\n%s", base, target, out)
	}
	return ranges, h
}

// clipFrom keeps what of ranges lies at or after off.
func clipFrom(ranges []control.DiffRange, off uint64) []control.DiffRange {
	var out []control.DiffRange
	for _, r := range ranges {
		if r.Offset+r.Length <= off {
			continue
		}
		if r.Offset < off {
			r.Length -= off - r.Offset
			r.Offset = off
		}
		out = append(out, r)
	}
	return out
}

// dirtyMap reads qemu:dirty-bitmap:base of export vol with nbdinfo and
// returns its dirty ranges.
func dirtyMap(t *testing.T, d *daemon, base, vol string) []control.DiffRange {
	t.Helper()
	return parseDirtyMap(t, tooltest.Run(t, "nbdinfo", pkgLibnbd, "--map=qemu:dirty-bitmap:"+base, "--json", d.unixURI(vol)))
}

// parseDirtyMap reads the dirty ranges from the output of nbdinfo
// --map=qemu:dirty-bitmap:BASE --json.
func parseDirtyMap(t *testing.T, out string) []control.DiffRange {
	t.Helper()
	var m []struct{ Offset, Length, Type uint64 }
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("nbdinfo --map: %v\n%s", err, out)
	}
	var ranges []control.DiffRange
	for _, e := range m {
		if e.Type&1 == 0 {
			continue
		}
		if k := len(ranges); k > 0 && ranges[k-1].Offset+ranges[k-1].Length == e.Offset {
			ranges[k-1].Length += e.Length
			continue
		}
		ranges = append(ranges, control.DiffRange{Offset: e.Offset, Length: e.Length})
	}
	return ranges
}

// dirtyOnly forgets the states, merging what touches: the dirty bitmap
// marks changed and unmapped alike.
func dirtyOnly(ranges []control.DiffRange) []control.DiffRange {
	var out []control.DiffRange
	for _, r := range ranges {
		if k := len(out); k > 0 && out[k-1].Offset+out[k-1].Length == r.Offset {
			out[k-1].Length += r.Length
			continue
		}
		out = append(out, control.DiffRange{Offset: r.Offset, Length: r.Length})
	}
	return out
}

// thinDeltaDirty is where thin_delta reports different, left_only or
// right_only between two devices, in bytes.
func thinDeltaDirty(t *testing.T, meta string, left, right uint64) []control.DiffRange {
	t.Helper()
	out := tooltest.Run(t, "thin_delta", pkgThinTools, "--snap1", strconv.FormatUint(left, 10), "--snap2", strconv.FormatUint(right, 10), meta)
	var ranges []control.DiffRange
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		var kind string
		var begin, length uint64
		if !strings.HasPrefix(l, "<different") && !strings.HasPrefix(l, "<left_only") && !strings.HasPrefix(l, "<right_only") {
			continue
		}
		if _, err := fmt.Sscanf(strings.ReplaceAll(l, `"`, " "), "%s begin= %d length= %d", &kind, &begin, &length); err != nil {
			t.Fatalf("thin_delta line %q: %v", l, err)
		}
		r := control.DiffRange{Offset: begin * blockSize, Length: length * blockSize}
		if k := len(ranges); k > 0 && ranges[k-1].Offset+ranges[k-1].Length == r.Offset {
			ranges[k-1].Length += r.Length
			continue
		}
		ranges = append(ranges, r)
	}
	return ranges
}

// snapshotChain makes volume vm of size bytes and runs random writes and
// discards on it before, between and after snapshots s1 and s2, keeping
// them in a model.
func snapshotChain(t *testing.T, d *daemon, rng *rand.Rand, size int64) *blockModel {
	t.Helper()
	d.mustCLI("volume", "create", "vm", "--size", fmt.Sprint(size))
	m := &blockModel{vols: map[string]map[int64]int{"vm": {}}}
	m.workload(t, d, rng, "vm", size, 60)
	d.mustCLI("volume", "snapshot", "vm", "s1")
	m.snapshot("vm", "s1")
	m.workload(t, d, rng, "vm", size, 40)
	d.mustCLI("volume", "snapshot", "vm", "s2")
	m.snapshot("vm", "s2")
	m.workload(t, d, rng, "vm", size, 40)
	return m
}

// TestVolumeDiffAndDirtyBitmaps takes snapshots between random writes and
// discards, then checks, for snapshot against volume and snapshot against
// snapshot: thind volume diff against the model (changed and unmapped
// ranges), resumed from an offset; nbdinfo --map=qemu:dirty-bitmap:BASE
// against the same ranges; and, with the daemon stopped, both against
// where thin_delta reports different, left_only or right_only.
func TestVolumeDiffAndDirtyBitmaps(t *testing.T) {
	randtest.Each(t, 2, func(t *testing.T, seed uint64) {
		rng := randtest.FromSeed(seed)
		d := startDaemon(t, "--data-size", "256M", "--metadata-size", "16M")
		const size = 32 << 20
		m := snapshotChain(t, d, rng, size)
		d.mustCLI("volume", "snapshot", "s1", "s1b") // a snapshot of a snapshot, then written
		m.snapshot("s1", "s1b")
		m.workload(t, d, rng, "s1b", size, 20)

		pairs := [][2]string{{"s1", "vm"}, {"s2", "vm"}, {"s1", "s2"}, {"s2", "s1"}, {"s1b", "s2"}, {"vm", "s1b"}}
		got := map[[2]string][]control.DiffRange{}
		for _, p := range pairs {
			ranges, h := volumeDiff(t, d, p[0], p[1], 0)
			if want := m.dirty(p[0], p[1], size); !slices.Equal(ranges, want) {
				t.Fatalf("volume diff %s %s:\n got %v\nwant %v", p[0], p[1], ranges, want)
			}
			if h.Size != size || h.BlockSize != blockSize || h.Start != 0 {
				t.Fatalf("diff header %+v", h)
			}
			if len(ranges) > 0 {
				// Resume from inside a range, as after an interrupted stream.
				mid := ranges[len(ranges)/2].Offset + 4096
				rest, h := volumeDiff(t, d, p[0], p[1], mid)
				if want := clipFrom(ranges, mid); h.Start != mid || !slices.Equal(rest, want) {
					t.Fatalf("volume diff %s %s --offset %d:\n got %v\nwant %v", p[0], p[1], mid, rest, want)
				}
			}
			if dm := dirtyMap(t, d, p[0], p[1]); !slices.Equal(dm, dirtyOnly(ranges)) {
				t.Fatalf("nbdinfo --map=qemu:dirty-bitmap:%s on %s:\n got %v\nwant %v", p[0], p[1], dm, dirtyOnly(ranges))
			}
			got[p] = ranges
		}
		// The text form prints the same ranges, OFFSET LENGTH STATE.
		text := d.mustCLI("volume", "diff", "s1", "vm")
		var lines []string
		for _, r := range got[[2]string{"s1", "vm"}] {
			lines = append(lines, fmt.Sprintf("%d %d %s", r.Offset, r.Length, r.State))
		}
		if body := strings.Split(strings.TrimSpace(text), "\n"); len(body) != len(lines)+3 || !slices.Equal(body[2:len(body)-1], lines) {
			t.Fatalf("volume diff s1 vm prints:\n%s\nwant the ranges\n%s", text, strings.Join(lines, "\n"))
		}
		ids := map[string]uint64{}
		for _, v := range d.volumes() {
			ids[v.Name] = v.DevID
		}
		d.stop()
		meta := filepath.Join(d.dir, "metadata")
		for _, p := range pairs {
			if td := thinDeltaDirty(t, meta, ids[p[0]], ids[p[1]]); !slices.Equal(td, dirtyOnly(got[p])) {
				t.Fatalf("thin_delta %s %s:\n got %v\nwant %v", p[0], p[1], td, dirtyOnly(got[p]))
			}
		}
	})
}

// TestDirtyBitmapsThroughLibnbd lists the dirty bitmaps an export offers
// with libnbd (prefix queries as qemu answers them), and reads one beside
// base:allocation in one BLOCK_STATUS, with and without REQ_ONE.
func TestDirtyBitmapsThroughLibnbd(t *testing.T) {
	d := startDaemon(t, tinyPool...)
	d.mustCLI("volume", "create", "vm", "--size", "32M")
	d.mustCLI("volume", "create", "other", "--size", "32M")
	c := d.dial(t, "vm")
	if err := c.pwrite(bytes.Repeat([]byte{1}, blockSize), 0, 0); err != nil {
		t.Fatal(err)
	}
	c.close()
	d.mustCLI("volume", "snapshot", "vm", "s1")
	d.mustCLI("volume", "snapshot", "vm", "s2")
	c = d.dial(t, "vm")
	if err := c.pwrite(bytes.Repeat([]byte{2}, 2*blockSize), 3*blockSize, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.trim(0, blockSize); err != nil {
		t.Fatal(err)
	}
	c.close()
	out := tooltest.RunPython(t, `
import sys
import nbd

def listed(*queries):
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.connect_uri(sys.argv[1])
    for q in queries:
        h.add_meta_context(q)
    names = []
    h.opt_list_meta_context(lambda name: names.append(name))
    h.opt_abort()
    return names

bitmaps = ["qemu:dirty-bitmap:s1", "qemu:dirty-bitmap:s2"]
assert listed() == ["base:allocation"] + bitmaps, listed()
assert listed("qemu:") == bitmaps, listed("qemu:")
assert listed("qemu:dirty-bitmap:") == bitmaps
assert listed("qemu:dirty-bitmap:s2") == bitmaps[1:]
assert listed("qemu:dirty-bitmap:other") == []

h = nbd.NBD()
h.add_meta_context("base:allocation")
h.add_meta_context("qemu:dirty-bitmap:s1")
h.connect_uri(sys.argv[1])
assert h.can_meta_context("qemu:dirty-bitmap:s1")
B = 65536
for flags, want in [(0, [B, 1, 2 * B, 0, 2 * B, 1, 27 * B, 0]), (nbd.CMD_FLAG_REQ_ONE, [B, 1])]:
    got = {}
    h.block_status(32 * B, 0, lambda m, o, e, err: got.__setitem__(m, e), flags)
    assert got["qemu:dirty-bitmap:s1"] == want, (flags, got)
    assert got["base:allocation"][:2] == [3 * B, 3], got  # block 0 trimmed, 1 and 2 never written
    assert flags == 0 or len(got["base:allocation"]) == 2, got
print("all assertions passed")
`, d.unixURI("vm"))
	if !strings.Contains(out, "all assertions passed") {
		t.Fatalf("script output:\n%s", out)
	}

	// nbdsh, the libnbd shell, on the snapshot-of-the-volume side: s1's
	// bitmap on export s2 (nothing differs) and vm's (block 0 was trimmed
	// since, blocks 3 and 4 written). nbdsh runs "python3" from PATH,
	// which must be the one with libnbd's bindings.
	nbdsh := tooltest.Need(t, "nbdsh", pkgLibnbd)
	cmd := exec.Command(nbdsh,
		"-c", `h.add_meta_context("qemu:dirty-bitmap:s1")`,
		"-c", `h.add_meta_context("qemu:dirty-bitmap:vm")`,
		"-u", d.unixURI("s2"),
		"-c", `e = {}`,
		"-c", `h.block_status(8 * 65536, 0, lambda m, o, x, err: e.__setitem__(m, x))`,
		"-c", `print(e["qemu:dirty-bitmap:s1"], e["qemu:dirty-bitmap:vm"])`)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(tooltest.LibnbdPython(t))+":"+os.Getenv("PATH"))
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nbdsh: %v\n%s", err, got)
	}
	if want := "[524288, 0] [65536, 1, 131072, 0, 131072, 1, 196608, 0]\n"; string(got) != want {
		t.Fatalf("nbdsh printed %q, want %q", got, want)
	}
}
