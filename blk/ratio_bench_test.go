package blk

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkPairedRatio measures the dispatcher's throughput as a fraction
// of raw pread/pwrite on the same file. On a shared machine the load from
// other tenants swamps the difference between two separate benchmark runs,
// so each iteration runs one short round of each path back to back
// (alternating which goes first) with 16 submitters, and the benchmark
// reports the median over iterations of raw time / blk time as "blk/raw"
// (1 means as fast as raw). Run with a fixed count of rounds:
//
//	go test -run '^$' -bench PairedRatio -benchtime 30x ./blk
func BenchmarkPairedRatio(b *testing.B) {
	ops := []struct {
		name  string
		write bool
	}{{"randread", false}, {"randwrite", true}}
	for _, op := range ops {
		for _, mode := range benchModes {
			b.Run(fmt.Sprintf("op=%s/mode=%s", op.name, mode.name), func(b *testing.B) {
				path := benchFile(b)
				fd := benchFD(b, path, mode.direct)
				d := benchDispatcher(b, path, mode.direct)
				ctx := context.Background()
				raw := func(buf []byte, off int64) error {
					var err error
					if op.write {
						_, err = unix.Pwrite(fd, buf, off)
					} else {
						_, err = unix.Pread(fd, buf, off)
					}
					return err
				}
				viaBlk := func(buf []byte, off int64) error {
					if op.write {
						return d.Write(ctx, buf, off, false)
					}
					return d.Read(ctx, buf, off)
				}
				perRound := 8000 // about 10 ms of buffered reads on an idle machine here
				if mode.direct {
					perRound = 800
				}
				var ratios []float64
				for i := 0; b.Loop(); i++ {
					var tRaw, tBlk time.Duration
					if i%2 == 0 {
						tRaw = timeRound(b, perRound, raw)
						tBlk = timeRound(b, perRound, viaBlk)
					} else {
						tBlk = timeRound(b, perRound, viaBlk)
						tRaw = timeRound(b, perRound, raw)
					}
					ratios = append(ratios, float64(tRaw)/float64(tBlk))
				}
				slices.Sort(ratios)
				b.ReportMetric(ratios[len(ratios)/2], "blk/raw")
				b.ReportMetric(ratios[len(ratios)/4], "blk/raw-p25")
				b.ReportMetric(ratios[len(ratios)*3/4], "blk/raw-p75")
			})
		}
	}
}

// timeRound runs n 4 KiB operations at random offsets on benchSubmitters
// goroutines and returns the wall time.
func timeRound(b *testing.B, n int, op func(buf []byte, off int64) error) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	for s := range benchSubmitters {
		wg.Go(func() {
			buf, _ := AlignedBuffer(4096, 4096)
			x := uint64(s+1)*0x9E3779B97F4A7C15 | 1
			for range n / benchSubmitters {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				if err := op(buf, int64(x%(benchFileSize/4096))*4096); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
