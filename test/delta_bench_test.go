package test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/tooltest"
	"github.com/thind-storage/thind/thinmeta"
)

// deltaBenchPool writes a pool for BenchmarkMetaDelta: an origin with n
// mapped blocks, a snapshot of it taken as thind takes them (sharing the
// origin's tree), then 1% of the origin's blocks rewritten, in ten
// clustered regions or at random.
func deltaBenchPool(b *testing.B, n uint64, clustered bool) string {
	b.Helper()
	meta := filepath.Join(b.TempDir(), "metadata")
	const nrMeta = 1 << 16 // 256 MiB
	f, err := os.Create(meta)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Truncate(nrMeta * bm.BlockSize); err != nil {
		b.Fatal(err)
	}
	p := pooltest.CreateMetadata(b, f, nrMeta, 128, n+n/50+1000, thinmeta.Options{CacheBytes: 256 << 20})
	insert := func(dev, vb uint64) {
		db, err := p.AllocDataBlock()
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Insert(dev, vb, db); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.CreateThin(0); err != nil {
		b.Fatal(err)
	}
	for vb := uint64(0); vb < n; vb++ {
		insert(0, vb)
	}
	if err := p.CreateSnap(1, 0); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	k := n / 100
	for i := uint64(0); i < k; i++ {
		vb := rng.Uint64N(n)
		if clustered {
			vb = (i/(k/10))*(n/10) + i%(k/10)
		}
		insert(0, vb)
	}
	if err := p.Close(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return meta
}

// BenchmarkMetaDelta times thind meta delta and thin_delta 0.9.0, one run
// each per iteration, on the same pool (see deltaBenchPool); both outputs
// are first checked to be the same bytes. Compare tool=thind with
// tool=thin_delta for each layout:
//
//	go test ./test -run '^$' -bench MetaDelta -benchtime 5x
func BenchmarkMetaDelta(b *testing.B) {
	const n = 1_000_000
	for _, layout := range []string{"clustered", "random"} {
		meta := deltaBenchPool(b, n, layout == "clustered")
		want, _, err := tooltest.RunErr(b, "thin_delta", pkgThinTools, "--snap1", "1", "--snap2", "0", meta)
		if err != nil {
			b.Fatal(err)
		}
		got, errOut, code := runThind(b, nil, "meta", "delta", "--snap1", "1", "--snap2", "0", meta)
		if code != 0 || got != want {
			b.Fatalf("thind meta delta differs from thin_delta (exit %d: %s)", code, errOut)
		}
		for _, tool := range []struct {
			name string
			cmd  []string
		}{
			{"thin_delta", []string{tooltest.Need(b, "thin_delta", pkgThinTools)}},
			{"thind", []string{thindBin, "meta", "delta"}},
		} {
			b.Run(fmt.Sprintf("changes=%s/tool=%s", layout, tool.name), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					cmd := exec.Command(tool.cmd[0], append(tool.cmd[1:], "--snap1", "1", "--snap2", "0", meta)...)
					if out, err := cmd.Output(); err != nil || len(out) != len(want) {
						b.Fatalf("%s: %v", tool.name, err)
					}
				}
			})
		}
	}
}
