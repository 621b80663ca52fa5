package thinpool_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thind-storage/thind/internal/loopfstest"
	"github.com/thind-storage/thind/thinpool"
)

const (
	pairedRounds   = 6    // each side runs at least this many operations
	opsPerRound    = 4096 // short rounds, so that noise hits both sides alike
	benchVol       = 256 << 20
	benchBlock     = 65536
	benchSubmitter = 16
)

// paired runs the same I/O on the raw backing file and through a thin
// device, in alternating rounds of benchSubmitter goroutines, and reports
// each one's time per operation and the thin device's throughput as a
// share of the raw file's (thin/raw: 1 is as fast, above 1 faster).
// Alternating rounds keep a noisy machine from favouring one side.
func paired(b *testing.B, raw, thin func(rng *rand.Rand, i int) error) {
	b.Helper()
	var rawT, thinT time.Duration
	rounds := max(pairedRounds, b.N/opsPerRound)
	per := max(b.N/rounds, 1)
	run := func(fn func(*rand.Rand, int) error, base int) time.Duration {
		var wg sync.WaitGroup
		var next atomic.Int64
		start := time.Now()
		for g := 0; g < benchSubmitter; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), uint64(base)))
				for {
					i := int(next.Add(1)) - 1
					if i >= per {
						return
					}
					if err := fn(rng, base+i); err != nil {
						b.Error(err)
						return
					}
				}
			}(g)
		}
		wg.Wait()
		return time.Since(start)
	}
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		// Each side goes first in half the rounds, so neither always
		// finds the caches as the other left them.
		if r%2 == 0 {
			rawT += run(raw, r*per)
			thinT += run(thin, r*per)
		} else {
			thinT += run(thin, r*per)
			rawT += run(raw, r*per)
		}
	}
	b.StopTimer()
	n := float64(per * rounds)
	b.ReportMetric(float64(rawT.Nanoseconds())/n, "raw-ns/op")
	b.ReportMetric(float64(thinT.Nanoseconds())/n, "thin-ns/op")
	b.ReportMetric(float64(rawT)/float64(thinT), "thin/raw")
}

type benchEnv struct {
	e    *env
	th   *thinpool.Thin
	data *os.File // the pool's data file, for the raw side
}

// newBenchEnv makes a pool whose data file just holds a volume of
// volBytes; provisioned, the volume maps data blocks 0.. in order, so the
// raw side can do the same I/O at the same places of the same file.
func newBenchEnv(b *testing.B, volBytes uint64, provision bool) *benchEnv {
	return newBenchEnvIn(b, b.TempDir(), benchBlock, volBytes, provision)
}

// newBenchEnvIn is newBenchEnv with the pool's files in dir and data
// blocks of blockBytes.
func newBenchEnvIn(b *testing.B, dir string, blockBytes, volBytes uint64, provision bool) *benchEnv {
	e := newFileEnvBlocks(b, dir, 64<<20, int64(volBytes)+16<<20, uint32(blockBytes/512), thinpool.Config{})
	th := e.thin(1, volBytes)
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	if provision {
		for off := uint64(0); off < volBytes; off += uint64(len(buf)) {
			if err := th.WriteAt(bg, buf[:min(uint64(len(buf)), volBytes-off)], off, false); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := e.pool.Commit(bg); err != nil {
		b.Fatal(err)
	}
	data, err := os.OpenFile(e.dataPath, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { data.Close() })
	return &benchEnv{e: e, th: th, data: data}
}

var page = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// BenchmarkRandom4K: 4 KiB random reads and writes of provisioned blocks,
// the steady state of a volume in use.
func BenchmarkRandom4K(b *testing.B) {
	for _, op := range []string{"read", "write"} {
		b.Run("op="+op, func(b *testing.B) {
			be := newBenchEnv(b, benchVol, true)
			b.SetBytes(4096)
			b.ReportAllocs()
			pick := func(rng *rand.Rand) int64 { return int64(rng.Uint64N(benchVol/4096)) * 4096 }
			raw := func(rng *rand.Rand, _ int) error {
				p := page.Get().(*[]byte)
				defer page.Put(p)
				var err error
				if op == "read" {
					_, err = be.data.ReadAt(*p, pick(rng))
				} else {
					_, err = be.data.WriteAt(*p, pick(rng))
				}
				return err
			}
			thin := func(rng *rand.Rand, _ int) error {
				p := page.Get().(*[]byte)
				defer page.Put(p)
				if op == "read" {
					return be.th.ReadAt(bg, *p, uint64(pick(rng)))
				}
				return be.th.WriteAt(bg, *p, uint64(pick(rng)), false)
			}
			paired(b, raw, thin)
		})
	}
}

// BenchmarkFirstWrite64K provisions: each write lands on a block never
// written (64 KiB blocks: no zeroing). The raw side writes as much to
// fresh places of a sparse file of its own.
func BenchmarkFirstWrite64K(b *testing.B) { firstWrites(b, benchBlock) }

// BenchmarkFirstWrite1M provisions 16 blocks per write, as a copy onto a
// new volume does.
func BenchmarkFirstWrite1M(b *testing.B) { firstWrites(b, 1<<20) }

// firstWrites writes r bytes at a time, each time onto blocks never
// written, against as many bytes written to fresh places of a sparse raw
// file.
func firstWrites(b *testing.B, r uint64) {
	vol := uint64(max(b.N, pairedRounds)+benchSubmitter) * r
	be := newBenchEnv(b, vol, false)
	raw, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	raw.Truncate(int64(vol))
	b.SetBytes(int64(r))
	b.ReportAllocs()
	buf := make([]byte, r)
	paired(b, func(_ *rand.Rand, i int) error {
		_, err := raw.WriteAt(buf, int64(uint64(i)*r))
		return err
	}, func(_ *rand.Rand, i int) error {
		return be.th.WriteAt(bg, buf, uint64(i)*r, false)
	})
}

// BenchmarkWriteAfterSnapshot breaks sharing: each 4 KiB write lands on a
// different block shared with a snapshot, so it copies a 64 KiB block.
// The raw side writes 4 KiB at the same places of the data file.
func BenchmarkWriteAfterSnapshot(b *testing.B) {
	writeAfterSnapshot(b, b.TempDir(), benchBlock)
}

// BenchmarkWriteAfterSnapshotOn is BenchmarkWriteAfterSnapshot with the
// pool on a loop-mounted XFS with reflink, where a copy can clone the old
// block, and on ext4, where it can copy in the kernel (root only), with
// 64 KiB blocks and with 2 MiB blocks (too big to patch in memory).
func BenchmarkWriteAfterSnapshotOn(b *testing.B) {
	for _, kind := range loopfstest.Kinds {
		for _, bs := range []uint64{benchBlock, 2 << 20} {
			b.Run(fmt.Sprintf("%s/block=%dK", kind, bs>>10), func(b *testing.B) {
				writeAfterSnapshot(b, loopfstest.Mount(b, kind, 8<<30), bs)
			})
		}
	}
}

func writeAfterSnapshot(b *testing.B, dir string, bs uint64) {
	vol := uint64(max(b.N, pairedRounds)+benchSubmitter) * bs
	be := newBenchEnvIn(b, dir, bs, vol, true)
	if err := be.e.pool.CreateSnap(bg, 2, 1); err != nil {
		b.Fatal(err)
	}
	// The copies need room beside the shared blocks.
	if err := os.Truncate(be.e.dataPath, int64(2*vol)+16<<20); err != nil {
		b.Fatal(err)
	}
	if err := be.e.pool.Resize(bg); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(4096)
	buf := make([]byte, 4096)
	paired(b, func(_ *rand.Rand, i int) error {
		_, err := be.data.WriteAt(buf, int64(i)*int64(bs)+4096)
		return err
	}, func(_ *rand.Rand, i int) error {
		return be.th.WriteAt(bg, buf, uint64(i)*bs+4096, false)
	})
}

// BenchmarkDiscard64K unmaps provisioned blocks one per discard, from 16
// submitters; each discard returns once the commit that punches its hole
// has run (concurrent ones share it). The raw side punches the same holes.
func BenchmarkDiscard64K(b *testing.B) {
	vol := uint64(max(b.N, pairedRounds)+benchSubmitter) * benchBlock
	be := newBenchEnv(b, vol, true)
	b.SetBytes(benchBlock)
	paired(b, func(_ *rand.Rand, i int) error {
		return unix.Fallocate(int(be.data.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(i)*benchBlock, benchBlock)
	}, func(_ *rand.Rand, i int) error {
		return be.th.Discard(bg, uint64(i)*benchBlock, benchBlock)
	})
}

// BenchmarkDiscard1M trims 1 MiB ranges from 16 submitters, as fstrim
// and blkdiscard send them; the raw side punches the same holes.
func BenchmarkDiscard1M(b *testing.B) {
	const r = 1 << 20
	vol := uint64(max(b.N, pairedRounds)+benchSubmitter) * r
	be := newBenchEnv(b, vol, true)
	b.SetBytes(r)
	paired(b, func(_ *rand.Rand, i int) error {
		return unix.Fallocate(int(be.data.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(i)*r, r)
	}, func(_ *rand.Rand, i int) error {
		return be.th.Discard(bg, uint64(i)*r, r)
	})
}

var mib = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// BenchmarkSequential1M: 1 MiB reads and writes of provisioned blocks, in
// order through the volume, as a copy or a backup streams it; each one
// spans 16 data blocks laid out one after another on the data device.
func BenchmarkSequential1M(b *testing.B) {
	const r = 1 << 20
	for _, op := range []string{"read", "write"} {
		b.Run("op="+op, func(b *testing.B) {
			be := newBenchEnv(b, benchVol, true)
			b.SetBytes(r)
			b.ReportAllocs()
			at := func(i int) int64 { return int64(i%(benchVol/r)) * r }
			raw := func(_ *rand.Rand, i int) error {
				p := mib.Get().(*[]byte)
				defer mib.Put(p)
				var err error
				if op == "read" {
					_, err = be.data.ReadAt(*p, at(i))
				} else {
					_, err = be.data.WriteAt(*p, at(i))
				}
				return err
			}
			thin := func(_ *rand.Rand, i int) error {
				p := mib.Get().(*[]byte)
				defer mib.Put(p)
				if op == "read" {
					return be.th.ReadAt(bg, *p, uint64(at(i)))
				}
				return be.th.WriteAt(bg, *p, uint64(at(i)), false)
			}
			paired(b, raw, thin)
		})
	}
}
