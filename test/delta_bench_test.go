package test

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

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

// BenchmarkMetaDelta times thind meta delta against thin_delta 0.9.0 on
// the same pool (see deltaBenchPool), after checking that both print the
// same bytes. Each iteration runs the two tools one after the other, in
// turn first, so that a load change on a shared machine falls on both;
// it reports each tool's median time and the median of the iterations'
// ratios (faster-x: thin_delta's time over thind's):
//
//	go test ./test -run '^$' -bench MetaDelta -benchtime 20x
func BenchmarkMetaDelta(b *testing.B) {
	const n = 1_000_000
	thinDelta := tooltest.Need(b, "thin_delta", pkgThinTools)
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
		tools := [2][]string{{thinDelta}, {thindBin, "meta", "delta"}}
		run := func(tool []string) time.Duration {
			cmd := exec.Command(tool[0], append(tool[1:], "--snap1", "1", "--snap2", "0", meta)...)
			start := time.Now()
			out, err := cmd.Output()
			took := time.Since(start)
			if err != nil || len(out) != len(want) {
				b.Fatalf("%s: %v", tool[0], err)
			}
			return took
		}
		b.Run("changes="+layout, func(b *testing.B) {
			var theirs, ours, ratios []float64
			for i := 0; i < b.N; i++ {
				var took [2]time.Duration
				for j := range 2 {
					k := (i + j) % 2
					took[k] = run(tools[k])
				}
				theirs = append(theirs, took[0].Seconds()*1e3)
				ours = append(ours, took[1].Seconds()*1e3)
				ratios = append(ratios, float64(took[0])/float64(took[1]))
			}
			b.ReportMetric(median(theirs), "thin_delta-ms")
			b.ReportMetric(median(ours), "thind-ms")
			b.ReportMetric(median(ratios), "faster-x")
		})
	}
}

// median returns the middle of xs (the mean of the two middle values
// for an even count); it sorts xs.
func median(xs []float64) float64 {
	slices.Sort(xs)
	m := len(xs) / 2
	if len(xs)%2 == 0 {
		return (xs[m-1] + xs[m]) / 2
	}
	return xs[m]
}
