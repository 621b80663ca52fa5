package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/devlock"
	"github.com/thind-storage/thind/internal/fixture"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/tooltest"
	"github.com/thind-storage/thind/spacemap"
	"github.com/thind-storage/thind/thinmeta"
)

// sameAsThinDelta runs `thind meta delta` and Debian's thin_delta with
// the same arguments and fails unless both print the same bytes and
// agree on success. It returns thin_delta's output.
func sameAsThinDelta(t *testing.T, args ...string) string {
	t.Helper()
	want, _, werr := tooltest.RunErr(t, "thin_delta", pkgThinTools, args...)
	got, errOut, code := runThind(t, nil, append([]string{"meta", "delta"}, args...)...)
	if (werr == nil) != (code == 0) {
		t.Fatalf("thin_delta %s: exit %v, thind meta delta exit %d: %s", strings.Join(args, " "), werr, code, errOut)
	}
	if got != want {
		t.Fatalf("thind meta delta %s differs from thin_delta:\n%s", strings.Join(args, " "), firstDiff(got, want))
	}
	return want
}

// firstDiff shows where two outputs part.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got %q\nwant %q", i+1, gl, wl)
		}
	}
	return "(equal lines, different bytes)"
}

// deviceIDs lists a pool's devices from thin_dump.
func deviceIDs(t *testing.T, meta string, args ...string) []string {
	t.Helper()
	var ids []string
	for _, l := range strings.Split(tooltest.Run(t, "thin_dump", pkgThinTools, append(args, meta)...), "\n") {
		if _, rest, ok := strings.Cut(l, `<device dev_id="`); ok {
			id, _, _ := strings.Cut(rest, `"`)
			ids = append(ids, id)
		}
	}
	return ids
}

// compareAllPairs compares every ordered pair of devices (and a device
// with itself), plain and verbose, plus an id no device has.
func compareAllPairs(t *testing.T, meta string, ids []string, extra ...string) int {
	t.Helper()
	n := 0
	for _, l := range ids {
		for _, r := range ids {
			for _, v := range [][]string{nil, {"--verbose"}} {
				args := append(append(slices.Clone(extra), v...), "--snap1", l, "--snap2", r, meta)
				sameAsThinDelta(t, args...)
				n++
			}
		}
	}
	sameAsThinDelta(t, append(slices.Clone(extra), "--snap1", "16777215", "--snap2", ids[0], meta)...)
	return n
}

// sample keeps at most n of ids, spread over them.
func sample(ids []string, n int) []string {
	if len(ids) <= n {
		return ids
	}
	var s []string
	for i := 0; i < n; i++ {
		s = append(s, ids[i*len(ids)/n])
	}
	return s
}

// TestMetaDeltaMatchesThinDeltaOnTheFixtures compares thind meta delta
// with thin_delta on every pool the kernel and thin_restore wrote, and
// with -m on the kernel's held metadata snapshot.
func TestMetaDeltaMatchesThinDeltaOnTheFixtures(t *testing.T) {
	for _, prefix := range []string{"kernel-", "restored-"} {
		for _, name := range fixture.Names(t, prefix) {
			t.Run(name, func(t *testing.T) {
				meta := fixture.UnpackMeta(t, name)
				ids := deviceIDs(t, meta)
				if len(ids) == 0 {
					// An empty pool: thin_delta refuses both ids alike.
					sameAsThinDelta(t, "--snap1", "0", "--snap2", "1", meta)
					return
				}
				n := compareAllPairs(t, meta, sample(ids, 5))
				t.Logf("%d devices, %d comparisons byte for byte", len(ids), n)
			})
		}
	}
	t.Run("kernel-metasnap -m", func(t *testing.T) {
		meta := fixture.UnpackMeta(t, "kernel-metasnap")
		ids := deviceIDs(t, meta, "-m")
		compareAllPairs(t, meta, ids, "-m")
		compareAllPairs(t, meta, ids, "-m25")
		sameAsThinDelta(t, "-m7", "--snap1", "0", "--snap2", "0", meta) // not the held block: both refuse
	})
}

// deltaWorkload drives random changes on a pool: thin devices and
// snapshots of snapshots, overwrites, discards, deletes, and a device
// shrunk then grown (its tail discarded, then written past).
type deltaWorkload struct {
	t    *testing.T
	rng  *rand.Rand
	p    *thinmeta.Pool
	devs []uint64
	next uint64
}

func (w *deltaWorkload) step() {
	t, p := w.t, w.p
	switch x := w.rng.IntN(100); {
	case x < 6 || len(w.devs) == 0:
		if err := p.CreateThin(w.next); err != nil {
			t.Fatal(err)
		}
		w.devs = append(w.devs, w.next)
		w.next++
	case x < 14 && len(w.devs) < 10:
		if err := p.CreateSnap(w.next, w.pick()); err != nil {
			t.Fatal(err)
		}
		w.devs = append(w.devs, w.next)
		w.next++
	case x < 16 && len(w.devs) > 3:
		d := w.pick()
		if err := p.DeleteThin(d); err != nil {
			t.Fatal(err)
		}
		w.devs = slices.DeleteFunc(w.devs, func(x uint64) bool { return x == d })
	case x < 70:
		// Overwrites, in a run or scattered.
		d, vb := w.pick(), w.rng.Uint64N(20000)
		run := w.rng.IntN(2) == 0
		for i := uint64(0); i < 1+w.rng.Uint64N(200); i++ {
			v := vb + i
			if !run {
				v = w.rng.Uint64N(20000)
			}
			b, err := p.AllocDataBlock()
			if errors.Is(err, spacemap.ErrNoSpace) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Insert(d, v, b); err != nil {
				t.Fatal(err)
			}
		}
	case x < 85:
		lo := w.rng.Uint64N(20000)
		if _, err := p.RemoveRange(w.pick(), lo, lo+w.rng.Uint64N(2000)); err != nil {
			t.Fatal(err)
		}
	case x < 88:
		// Shrink: everything past a point goes; later writes grow it.
		if _, err := p.RemoveRange(w.pick(), w.rng.Uint64N(20000), 1<<40); err != nil {
			t.Fatal(err)
		}
	default:
		if err := p.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

func (w *deltaWorkload) pick() uint64 { return w.devs[w.rng.IntN(len(w.devs))] }

func (w *deltaWorkload) ids() []string {
	var s []string
	for _, d := range slices.Sorted(slices.Values(w.devs)) {
		s = append(s, strconv.FormatUint(d, 10))
	}
	return s
}

// newDeltaPool makes a pool on a file for thin_delta to read.
func newDeltaPool(t *testing.T, seed uint64) (*deltaWorkload, string, *os.File) {
	meta := filepath.Join(t.TempDir(), "metadata")
	const nrMeta = 4096
	f, err := os.Create(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(nrMeta * bm.BlockSize); err != nil {
		t.Fatal(err)
	}
	p := pooltest.CreateMetadata(t, f, nrMeta, 128, 60000, thinmeta.Options{})
	if err := p.SetUUID([16]byte{1, 2, 3, 15: 4}); err != nil { // thin_delta prints none
		t.Fatal(err)
	}
	return &deltaWorkload{t: t, rng: randtest.FromSeed(seed), p: p}, meta, f
}

// TestMetaDeltaMatchesThinDeltaOnRandomPools compares every pair of
// devices of random pools thind wrote, whose snapshots share subtrees,
// byte for byte with thin_delta.
func TestMetaDeltaMatchesThinDeltaOnRandomPools(t *testing.T) {
	randtest.Each(t, 3, func(t *testing.T, seed uint64) {
		w, meta, f := newDeltaPool(t, seed)
		for i := 0; i < 400; i++ {
			w.step()
		}
		if err := w.p.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		n := compareAllPairs(t, meta, sample(w.ids(), 6))
		t.Logf("%d devices, %d comparisons byte for byte", len(w.devs), n)
	})
}

// TestMetaDeltaMatchesThinDeltaOnDensePools compares devices written
// whole, snapshots of them and of those, rewritten in clusters, with a
// hole or none before each snapshot: the plain output's same runs then
// come from the proof that shared subtrees have no holes, or, where a
// hole breaks it, from reading them.
func TestMetaDeltaMatchesThinDeltaOnDensePools(t *testing.T) {
	randtest.Each(t, 3, func(t *testing.T, seed uint64) {
		w, meta, f := newDeltaPool(t, seed)
		p, rng := w.p, w.rng
		write := func(d, vb uint64) {
			b, err := p.AllocDataBlock()
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Insert(d, vb, b); err != nil {
				t.Fatal(err)
			}
		}
		n := 10000 + rng.Uint64N(15000)
		if err := p.CreateThin(0); err != nil {
			t.Fatal(err)
		}
		for vb := range n {
			write(0, vb)
		}
		w.devs, w.next = []uint64{0}, 1
		for range 4 {
			if rng.IntN(2) == 0 {
				if err := p.Remove(w.pick(), rng.Uint64N(n)); err != nil && !errors.Is(err, thinmeta.ErrNotMapped) {
					t.Fatal(err)
				}
			}
			if err := p.CreateSnap(w.next, w.pick()); err != nil {
				t.Fatal(err)
			}
			w.devs = append(w.devs, w.next)
			w.next++
			d, vb := w.pick(), rng.Uint64N(n)
			for v := vb; v < min(n, vb+1+rng.Uint64N(600)); v++ {
				write(d, v)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		c := compareAllPairs(t, meta, w.ids())
		t.Logf("%d blocks, %d devices, %d comparisons byte for byte", n, len(w.devs), c)
	})
}

// TestMetaDeltaOnALivePoolsMetadataSnapshot compares the devices of a
// pool in use through its held metadata snapshot while the pool goes on
// changing, as a backup of a running pool does; reading its current
// metadata is refused, naming the holder.
func TestMetaDeltaOnALivePoolsMetadataSnapshot(t *testing.T) {
	randtest.Each(t, 2, func(t *testing.T, seed uint64) {
		w, meta, _ := newDeltaPool(t, seed)
		held, err := devlock.Exclusive(meta) // as a running thind holds it
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		for i := 0; i < 300; i++ {
			w.step()
		}
		if err := w.p.ReserveMetadataSnap(); err != nil {
			t.Fatal(err)
		}
		if err := w.p.Commit(); err != nil { // the snapshot is durable now
			t.Fatal(err)
		}
		ids := w.ids()
		snap := tooltest.Run(t, "thin_dump", pkgThinTools, "-m", meta)
		for i := 0; i < 100; i++ { // the pool moves on
			w.step()
		}
		if err := w.p.Commit(); err != nil {
			t.Fatal(err)
		}
		if again := tooltest.Run(t, "thin_dump", pkgThinTools, "-m", meta); again != snap {
			t.Fatal("the held metadata snapshot changed")
		}
		n := compareAllPairs(t, meta, sample(ids, 6), "-m")
		_, errOut, code := runThind(t, nil, "meta", "delta", "--snap1", ids[0], "--snap2", ids[0], meta)
		if code == 0 || !strings.Contains(errOut, "pid "+strconv.Itoa(os.Getpid())) {
			t.Fatalf("delta of a pool in use without -m: exit %d: %s", code, errOut)
		}
		if err := w.p.ReleaseMetadataSnap(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d devices, %d comparisons byte for byte through the metadata snapshot", len(ids), n)
	})
}

// TestMetaDeltaJSONHoldsTheVerboseRanges checks that --json carries what
// thin_delta --verbose prints: every range with its data blocks, and the
// superblock's fields.
func TestMetaDeltaJSONHoldsTheVerboseRanges(t *testing.T) {
	meta := fixture.UnpackMeta(t, "kernel-small")
	xml := sameAsThinDelta(t, "--verbose", "--snap1", "0", "--snap2", "1", meta)
	out, errOut, code := runThind(t, nil, "meta", "delta", "--json", "--snap1", "0", "--snap2", "1", meta)
	if code != 0 {
		t.Fatalf("meta delta --json: exit %d: %s", code, errOut)
	}
	var got struct {
		Time          uint64 `json:"time"`
		Transaction   uint64 `json:"transaction"`
		DataBlockSize uint64 `json:"data_block_size"`
		NrDataBlocks  uint64 `json:"nr_data_blocks"`
		Left          uint64 `json:"left"`
		Right         uint64 `json:"right"`
		Runs          []struct {
			Kind           string  `json:"kind"`
			Begin          uint64  `json:"begin"`
			Length         uint64  `json:"length"`
			LeftDataBegin  *uint64 `json:"left_data_begin"`
			RightDataBegin *uint64 `json:"right_data_begin"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("meta delta --json: %v\n%s", err, out)
	}
	// Rebuild the verbose XML's range lines from the JSON.
	var b strings.Builder
	kind := ""
	for _, r := range got.Runs {
		if r.Kind != kind {
			if kind != "" {
				fmt.Fprintf(&b, "    </%s>\n", kind)
			}
			fmt.Fprintf(&b, "    <%s>\n", r.Kind)
			kind = r.Kind
		}
		switch {
		case r.LeftDataBegin != nil && r.RightDataBegin != nil && r.Kind == "different":
			fmt.Fprintf(&b, "      <range begin=\"%d\" left_data_begin=\"%d\" right_data_begin=\"%d\" length=\"%d\"/>\n", r.Begin, *r.LeftDataBegin, *r.RightDataBegin, r.Length)
		case r.LeftDataBegin != nil:
			fmt.Fprintf(&b, "      <range begin=\"%d\" data_begin=\"%d\" length=\"%d\"/>\n", r.Begin, *r.LeftDataBegin, r.Length)
		default:
			fmt.Fprintf(&b, "      <range begin=\"%d\" data_begin=\"%d\" length=\"%d\"/>\n", r.Begin, *r.RightDataBegin, r.Length)
		}
	}
	if kind != "" {
		fmt.Fprintf(&b, "    </%s>\n", kind)
	}
	header := fmt.Sprintf("<superblock uuid=\"\" time=\"%d\" transaction=\"%d\" data_block_size=\"%d\" nr_data_blocks=\"%d\">\n  <diff left=\"%d\" right=\"%d\">\n",
		got.Time, got.Transaction, got.DataBlockSize, got.NrDataBlocks, got.Left, got.Right)
	if rebuilt := header + b.String() + "  </diff>\n</superblock>\n"; rebuilt != xml {
		t.Fatalf("--json differs from --verbose:\n%s", firstDiff(rebuilt, xml))
	}
}

// TestMetaDeltaMOnARunningDaemon reserves a metadata snapshot of a
// running daemon's pool (thind pool reserve-metadata-snap), then, while
// the volume goes on being written, compares its snapshots with -m
// against thin_delta -m on the live metadata device, plain and verbose;
// what the held snapshot shows stays put as the pool changes, and after
// release-metadata-snap -m finds nothing to read.
func TestMetaDeltaMOnARunningDaemon(t *testing.T) {
	randtest.Each(t, 2, func(t *testing.T, seed uint64) {
		rng := randtest.FromSeed(seed)
		d := startDaemon(t, "--data-size", "256M", "--metadata-size", "16M")
		const size = 32 << 20
		m := snapshotChain(t, d, rng, size)
		out := d.mustCLI("pool", "reserve-metadata-snap")
		if !strings.HasPrefix(out, "metadata snapshot held at block ") {
			t.Fatalf("reserve-metadata-snap: %q", out)
		}
		if _, _, code := d.cli("pool", "reserve-metadata-snap"); code == 0 {
			t.Fatal("a second reserve-metadata-snap succeeded while one is held")
		}
		if st := d.mustCLI("pool", "status"); !strings.Contains(st, "metadata snap:  held at block") {
			t.Fatalf("pool status does not show the held snapshot:\n%s", st)
		}
		meta := d.metadataPath()
		ids := []string{strconv.FormatUint(d.volume("s1").DevID, 10), strconv.FormatUint(d.volume("s2").DevID, 10), strconv.FormatUint(d.volume("vm").DevID, 10)}
		held := tooltest.Run(t, "thin_dump", pkgThinTools, "-m", meta)
		m.workload(t, d, rng, "vm", size, 40) // the pool moves on meanwhile
		n := compareAllPairs(t, meta, ids, "-m")
		if again := tooltest.Run(t, "thin_dump", pkgThinTools, "-m", meta); again != held {
			t.Fatal("the held metadata snapshot changed while the pool was written")
		}
		if _, errOut, code := runThind(t, nil, "meta", "delta", "--snap1", ids[0], "--snap2", ids[2], meta); code == 0 || !strings.Contains(errOut, "in use") {
			t.Fatalf("meta delta of the running pool without -m: exit %d: %s", code, errOut)
		}
		if out := d.mustCLI("pool", "release-metadata-snap"); out != "no metadata snapshot held\n" {
			t.Fatalf("release-metadata-snap: %q", out)
		}
		if _, errOut, code := runThind(t, nil, "meta", "delta", "-m", "--snap1", ids[0], "--snap2", ids[2], meta); code == 0 {
			t.Fatalf("meta delta -m after the release succeeded: %s", errOut)
		}
		if _, _, code := d.cli("pool", "release-metadata-snap"); code == 0 {
			t.Fatal("release-metadata-snap with none held succeeded")
		}
		t.Logf("%d comparisons byte for byte with thin_delta -m on the running pool", n)
	})
}
