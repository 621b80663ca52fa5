package test

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/thind-storage/thind/internal/tooltest"
)

// blockSize is the data block size of the tests' pools (thind's default).
const blockSize = 64 << 10

func TestNBDInfoListsTheVolumesAndTheirCapabilities(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "alpha", "--size", "64M")
	d.mustCLI("volume", "create", "beta", "--size", "100M", "--description", "the second one")
	d.mustCLI("volume", "create", "gamma", "--size", "32M", "--read-only")
	d.mustCLI("volume", "snapshot", "alpha", "alpha-snap")

	type export struct {
		Name        string `json:"export-name"`
		Description string `json:"description"`
		Size        int64  `json:"export-size"`
		ReadOnly    bool   `json:"is_read_only"`
		CanTrim     bool   `json:"can_trim"`
		CanMulti    bool   `json:"can_multi_conn"`
	}
	want := []export{
		{"alpha", "thin volume alpha", 64 << 20, false, true, true},
		{"alpha-snap", "thin volume alpha-snap, snapshot of alpha", 64 << 20, false, true, true},
		{"beta", "the second one", 100 << 20, false, true, true},
		{"default", "thin volume default", 2 << 30, false, true, true},
		{"gamma", "thin volume gamma", 32 << 20, true, false, true},
	}
	for _, uri := range []string{d.unixURI(""), "nbd://" + d.tcp} {
		out := tooltest.Run(t, "nbdinfo", pkgLibnbd, "--list", "--json", uri)
		var list struct{ Exports []export }
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("nbdinfo --list --json: %v\n%s", err, out)
		}
		slices.SortFunc(list.Exports, func(a, b export) int { return strings.Compare(a.Name, b.Name) })
		if fmt.Sprint(list.Exports) != fmt.Sprint(want) {
			t.Errorf("nbdinfo --list %s:\n got %+v\nwant %+v", uri, list.Exports, want)
		}
	}
	// The text form, as a person reads it.
	out := tooltest.Run(t, "nbdinfo", pkgLibnbd, "--list", d.unixURI(""))
	for _, s := range []string{`export="alpha":`, `export="default":`, "description: the second one", "export-size: 33554432 (32M)"} {
		if !strings.Contains(out, s) {
			t.Errorf("nbdinfo --list lacks %q:\n%s", s, out)
		}
	}

	for _, uri := range []string{d.unixURI("alpha"), d.tcpURI("alpha")} {
		for _, feature := range []string{"trim", "zero", "fua", "flush", "multi-conn", "fast-zero", "write"} {
			if !tooltest.NBDInfoProbe(t, uri, "--can", feature) {
				t.Errorf("nbdinfo --can %s %s: false", feature, uri)
			}
		}
		if tooltest.NBDInfoProbe(t, uri, "--is", "read-only") {
			t.Errorf("nbdinfo --is read-only %s: true", uri)
		}
	}
	if !tooltest.NBDInfoProbe(t, d.unixURI("gamma"), "--is", "read-only") {
		t.Error("nbdinfo --is read-only: false for a volume created --read-only")
	}
	for _, feature := range []string{"trim", "zero", "write"} {
		if tooltest.NBDInfoProbe(t, d.unixURI("gamma"), "--can", feature) {
			t.Errorf("read-only volume: --can %s is true", feature)
		}
	}
	// The empty export name is the default volume.
	if out := strings.TrimSpace(tooltest.Run(t, "nbdinfo", pkgLibnbd, "--size", d.unixURI(""))); out != strconv.Itoa(2<<30) {
		t.Errorf("nbdinfo --size of the default export: %q", out)
	}
	// An unknown volume is an error and the daemon carries on.
	if out, errOut, err := tooltest.RunErr(t, "nbdinfo", pkgLibnbd, d.unixURI("nope")); err == nil || !strings.Contains(out+errOut, "No such file or directory") {
		t.Errorf("nbdinfo of an unknown volume: %v\n%s%s", err, out, errOut)
	}
	if !tooltest.NBDInfoProbe(t, d.unixURI("beta"), "--can", "connect") {
		t.Error("the daemon stopped serving after an unknown export")
	}
}

// extent is one nbdinfo --map entry: type 0 is data, 3 hole and zero.
type extent struct{ Off, Len, Type int64 }

func nbdinfoMap(t *testing.T, uri string) []extent {
	t.Helper()
	return parseNbdinfoMap(t, tooltest.Run(t, "nbdinfo", pkgLibnbd, "--map", "--json", uri))
}

// parseNbdinfoMap reads the output of nbdinfo --map --json, merged.
func parseNbdinfoMap(t *testing.T, out string) []extent {
	t.Helper()
	var m []struct {
		Offset, Length, Type int64
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("nbdinfo --map --json: %v\n%s", err, out)
	}
	var ext []extent
	for _, e := range m {
		ext = appendExtent(ext, extent{e.Offset, e.Length, e.Type})
	}
	return ext
}

// appendExtent appends e, merging it with the last extent of the same
// type.
func appendExtent(ext []extent, e extent) []extent {
	if k := len(ext); k > 0 && ext[k-1].Type == e.Type && ext[k-1].Off+ext[k-1].Len == e.Off {
		ext[k-1].Len += e.Len
		return ext
	}
	return append(ext, e)
}

// provisioned is a model of which data blocks of a volume are mapped.
type provisioned map[int64]bool

// touch marks every block [off, off+n) overlaps as mapped.
func (p provisioned) touch(off, n int64) {
	for b := off / blockSize; b*blockSize < off+n; b++ {
		p[b] = true
	}
}

// unmap unmaps the blocks [off, off+n) covers whole: thind (like dm-thin)
// leaves the partial blocks at the edges of a discard mapped.
func (p provisioned) unmap(off, n int64) {
	for b := (off + blockSize - 1) / blockSize; (b+1)*blockSize <= off+n; b++ {
		delete(p, b)
	}
}

// extents is the map nbdinfo should report for a volume of size bytes.
func (p provisioned) extents(size int64) []extent {
	var ext []extent
	for off := int64(0); off < size; off += blockSize {
		typ := int64(3)
		if p[off/blockSize] {
			typ = 0
		}
		ext = appendExtent(ext, extent{off, min(blockSize, size-off), typ})
	}
	return ext
}

func TestNBDInfoMapShowsHolesWhereNothingIsProvisioned(t *testing.T) {
	const size = 64 << 20
	d := startDaemon(t)
	d.mustCLI("volume", "create", "vol", "--size", "64M")
	uri := d.unixURI("vol")
	model := provisioned{}
	check := func(what string) {
		t.Helper()
		want := model.extents(size)
		for _, u := range []string{uri, d.tcpURI("vol")} {
			if got := nbdinfoMap(t, u); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: nbdinfo --map %s\n got %v\nwant %v", what, u, got, want)
			}
		}
		if v := d.volume("vol"); v.MappedBytes != uint64(len(model))*blockSize {
			t.Errorf("%s: volume show: %d bytes mapped, the model %d", what, v.MappedBytes, len(model)*blockSize)
		}
	}
	check("a new volume")

	// Unaligned writes provision every block they touch.
	qemuIO(t, uri, "write -P 0xa1 100k 4k", "write -P 0xa2 1020k 8k", "write -P 0xa3 3M 1M", "write -P 0xa4 10M 1", "flush")
	model.touch(100<<10, 4<<10)
	model.touch(1020<<10, 8<<10)
	model.touch(3<<20, 1<<20)
	model.touch(10<<20, 1)
	check("after writes")
	tooltest.RunPython(t, `
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"\xb1" * 70000, 20 << 20, nbd.CMD_FLAG_FUA)
h.zero(65536, 30 << 20, nbd.CMD_FLAG_NO_HOLE)   # NO_HOLE: provisioned, reads as zeros
h.flush()
h.shutdown()
`, uri)
	model.touch(20<<20, 70000)
	model.touch(30<<20, 64<<10)
	check("after nbdsh writes")

	// Discards unmap the blocks they cover whole, zeroes without NO_HOLE
	// likewise; partial blocks stay mapped.
	qemuIO(t, uri, "discard 3200k 256k", "discard 100k 4k", "write -z -u 1M 64k", "discard 20M 64k")
	model.unmap(3200<<10, 256<<10)
	model.unmap(100<<10, 4<<10)
	model.unmap(1<<20, 64<<10)
	model.unmap(20<<20, 64<<10)
	check("after trims")

	// What is left reads back.
	// (A discard of part of a block may leave its data, as dm-thin's
	// does: 100k+4k is not read.)
	qemuIO(t, uri, "read -P 0xa2 1020k 4k", "read -P 0 1M 64k", "read -P 0xa3 3M 128k",
		"read -P 0 3200k 256k", "read -P 0xa3 3456k 576k", "read -P 0xa4 10M 1", "read -P 0 20M 64k",
		"read -P 0xb1 20544k 4464", "read -P 0 30M 64k")
	devID := d.volume("vol").DevID

	// The thin metadata of the stopped pool maps exactly those blocks.
	d.stop()
	xmlOut := runThindOK(t, "meta", "dump", filepath.Join(d.dir, "metadata"))
	got := mappedBlocks(t, xmlOut, devID)
	var want []int64
	for b := range model {
		want = append(want, b)
	}
	slices.Sort(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("thind meta dump maps blocks %v of device %d, the model %v", got, devID, want)
	}
}

// runThindOK runs the thind binary (no daemon needed) and fails on a
// non-zero exit.
func runThindOK(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, code := runThind(t, daemonEnv(), args...)
	if code != 0 {
		t.Fatalf("thind %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// mappedBlocks parses thin_dump XML and returns the virtual blocks device
// dev maps, in order.
func mappedBlocks(t testing.TB, dump string, dev uint64) []int64 {
	t.Helper()
	var sb struct {
		Devices []struct {
			DevID  uint64 `xml:"dev_id,attr"`
			Ranges []struct {
				Begin  int64 `xml:"origin_begin,attr"`
				Length int64 `xml:"length,attr"`
			} `xml:"range_mapping"`
			Singles []struct {
				Block int64 `xml:"origin_block,attr"`
			} `xml:"single_mapping"`
		} `xml:"device"`
	}
	if err := xml.Unmarshal([]byte(dump), &sb); err != nil {
		t.Fatalf("thin_dump XML: %v", err)
	}
	var out []int64
	found := false
	for _, d := range sb.Devices {
		if d.DevID != dev {
			continue
		}
		found = true
		for _, r := range d.Ranges {
			for b := r.Begin; b < r.Begin+r.Length; b++ {
				out = append(out, b)
			}
		}
		for _, s := range d.Singles {
			out = append(out, s.Block)
		}
	}
	if !found {
		t.Fatalf("device %d not in the dump", dev)
	}
	slices.Sort(out)
	return out
}
