package blk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Benchmarks compare the dispatcher with the same I/O done directly with
// pread/pwrite/fallocate on the same file in the same run, so that
// benchstat can put path=raw and path=blk side by side:
//
//	go test -run '^$' -bench . -benchtime 200ms -count 5 ./blk | tee new.txt
//	benchstat -col /path new.txt

const (
	benchFileSize   = 64 << 20
	benchSubmitters = 16
)

var benchModes = []struct {
	name   string
	direct bool
}{{"buffered", false}, {"direct", true}}

// benchFile creates a file of benchFileSize filled with data (not holes,
// which read faster than data) and flushed.
func benchFile(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	chunk := pattern(1<<20, 1)
	for off := int64(0); off < benchFileSize; off += int64(len(chunk)) {
		if _, err := f.WriteAt(chunk, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

func benchDispatcher(b *testing.B, path string, direct bool) *Dispatcher {
	b.Helper()
	f, err := OpenFile(path, FileOptions{Direct: direct})
	if err != nil {
		b.Fatal(err)
	}
	d, err := New(f, Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

func benchFD(b *testing.B, path string, direct bool) int {
	b.Helper()
	fd, err := openFD(path, false, direct)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	return fd
}

// runSubmitters runs the benchmark body on benchSubmitters goroutines,
// each with its own aligned buffer and random 4 KiB-aligned offsets.
func runSubmitters(b *testing.B, bs int, op func(buf []byte, off int64) error) {
	b.SetBytes(int64(bs))
	b.ReportAllocs()
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((benchSubmitters + procs - 1) / procs)
	var ids atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf, _ := AlignedBuffer(bs, 4096)
		fillPattern(buf, 2)
		x := ids.Add(1)*0x9E3779B97F4A7C15 | 1
		blocks := uint64(benchFileSize / bs)
		for pb.Next() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			if err := op(buf, int64(x%blocks)*int64(bs)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkRandRead(b *testing.B) {
	for _, mode := range benchModes {
		path := benchFile(b)
		b.Run(fmt.Sprintf("mode=%s/path=raw", mode.name), func(b *testing.B) {
			fd := benchFD(b, path, mode.direct)
			runSubmitters(b, 4096, func(buf []byte, off int64) error {
				_, err := unix.Pread(fd, buf, off)
				return err
			})
		})
		b.Run(fmt.Sprintf("mode=%s/path=blk", mode.name), func(b *testing.B) {
			d := benchDispatcher(b, path, mode.direct)
			ctx := context.Background()
			runSubmitters(b, 4096, func(buf []byte, off int64) error {
				return d.Read(ctx, buf, off)
			})
		})
		b.Run(fmt.Sprintf("mode=%s/path=blkplug", mode.name), func(b *testing.B) {
			lone := lonePieces(benchDispatcher(b, path, mode.direct))
			runSubmitters(b, 4096, func(buf []byte, off int64) error {
				return lone(OpRead, buf, off)
			})
		})
	}
}

// lonePieces returns a function that sends one request through a plug of
// its own and waits for it: what a lone piece would cost if it went
// through the queues instead of being issued directly. The plugs and
// requests are reused, as a submitter reuses its own.
func lonePieces(d *Dispatcher) func(op Op, buf []byte, off int64) error {
	type lone struct {
		p    *Plug
		r    Request
		done completions
	}
	pool := sync.Pool{New: func() any {
		l := &lone{p: d.NewPlug(), done: make(completions, 1)}
		l.r.End = l.done.end
		return l
	}}
	return func(op Op, buf []byte, off int64) error {
		l := pool.Get().(*lone)
		defer pool.Put(l)
		l.r.Op, l.r.Buf, l.r.Off = op, buf, off
		if err := l.p.Submit(context.Background(), &l.r); err != nil {
			return err
		}
		l.p.Finish()
		return <-l.done
	}
}

func BenchmarkRandWrite(b *testing.B) {
	for _, mode := range benchModes {
		path := benchFile(b)
		b.Run(fmt.Sprintf("mode=%s/path=raw", mode.name), func(b *testing.B) {
			fd := benchFD(b, path, mode.direct)
			runSubmitters(b, 4096, func(buf []byte, off int64) error {
				_, err := unix.Pwrite(fd, buf, off)
				return err
			})
		})
		b.Run(fmt.Sprintf("mode=%s/path=blk", mode.name), func(b *testing.B) {
			d := benchDispatcher(b, path, mode.direct)
			ctx := context.Background()
			runSubmitters(b, 4096, func(buf []byte, off int64) error {
				return d.Write(ctx, buf, off, false)
			})
		})
		b.Run(fmt.Sprintf("mode=%s/path=blkplug", mode.name), func(b *testing.B) {
			lone := lonePieces(benchDispatcher(b, path, mode.direct))
			runSubmitters(b, 4096, func(buf []byte, off int64) error {
				return lone(OpWrite, buf, off)
			})
		})
	}
}

// BenchmarkSeqWrite64K is one submitter writing 64 KiB sequentially:
// directly with pwrite, through the dispatcher one synchronous write at a
// time, and through a plug that sends 16 writes (1 MiB) at a time, which
// merge into pwritev calls of MaxMergeBytes.
func BenchmarkSeqWrite64K(b *testing.B) {
	const bs, batch = 64 << 10, 16
	for _, mode := range benchModes {
		path := benchFile(b)
		next := func(i int) int64 { return int64(i*bs) % benchFileSize }
		b.Run(fmt.Sprintf("mode=%s/path=raw", mode.name), func(b *testing.B) {
			fd := benchFD(b, path, mode.direct)
			buf, _ := AlignedBuffer(bs, 4096)
			b.SetBytes(bs)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := unix.Pwrite(fd, buf, next(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("mode=%s/path=blk", mode.name), func(b *testing.B) {
			d := benchDispatcher(b, path, mode.direct)
			buf, _ := AlignedBuffer(bs, 4096)
			b.SetBytes(bs)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := d.Write(context.Background(), buf, next(i), false); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("mode=%s/path=blkplug", mode.name), func(b *testing.B) {
			d := benchDispatcher(b, path, mode.direct)
			p := d.NewPlug()
			done := make(completions, batch)
			reqs := make([]Request, batch)
			for i := range reqs {
				buf, _ := AlignedBuffer(bs, 4096)
				reqs[i] = Request{Op: OpWrite, Buf: buf, End: done.end}
			}
			b.SetBytes(bs)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := &reqs[i%batch]
				r.Off = next(i)
				if err := p.Submit(context.Background(), r); err != nil {
					b.Fatal(err)
				}
				if i++; i%batch == 0 {
					p.Finish()
					if err := done.wait(b, batch); err != nil {
						b.Fatal(err)
					}
				}
			}
			p.Finish()
			if err := done.wait(b, i%batch); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkDiscard punches 64 KiB holes into data, cycling over the file
// and refilling it (outside the timer) before punching the same place
// again, so that every discard frees real blocks.
func BenchmarkDiscard(b *testing.B) {
	const bs = 64 << 10
	blocks := benchFileSize / bs
	path := benchFile(b)
	chunk := pattern(1<<20, 1)
	refill := func(b *testing.B, fd int) {
		b.StopTimer()
		for off := int64(0); off < benchFileSize; off += int64(len(chunk)) {
			if _, err := unix.Pwrite(fd, chunk, off); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	run := func(b *testing.B, discard func(off int64) error) {
		fd := benchFD(b, path, false)
		refill(b, fd)
		b.SetBytes(bs)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if i > 0 && i%blocks == 0 {
				refill(b, fd)
			}
			if err := discard(int64(i%blocks) * bs); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("path=raw", func(b *testing.B) {
		fd := benchFD(b, path, false)
		run(b, func(off int64) error {
			return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, bs)
		})
	})
	b.Run("path=blk", func(b *testing.B) {
		d := benchDispatcher(b, path, false)
		ctx := context.Background()
		run(b, func(off int64) error { return d.Discard(ctx, off, bs) })
	})
}

// BenchmarkFUAWrite compares the two ways to make a 4 KiB write durable:
// pwrite then fdatasync, or pwritev2 with RWF_DSYNC (what File does), with
// one or 16 writers, and with another goroutine dirtying the page cache of
// the same file with buffered 64 KiB writes (dirty=yes): fdatasync must
// write those back too, RWF_DSYNC only its own range.
func BenchmarkFUAWrite(b *testing.B) {
	path := benchFile(b)
	for _, dirty := range []bool{false, true} {
		for _, subs := range []int{1, benchSubmitters} {
			for _, mode := range []string{"fdatasync", "rwf_dsync"} {
				name := fmt.Sprintf("dirty=%v/sub=%d/mode=%s", map[bool]string{false: "no", true: "yes"}[dirty], subs, mode)
				b.Run(name, func(b *testing.B) {
					benchFUA(b, path, dirty, subs, mode == "fdatasync")
				})
			}
		}
	}
}

func benchFUA(b *testing.B, path string, dirty bool, subs int, fdatasync bool) {
	f, err := OpenFile(path, FileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if dirty {
		// The dirtier writes the second half of the file; the FUA writers
		// stay in the first half.
		stop, stopped := make(chan struct{}), make(chan struct{})
		defer func() { close(stop); <-stopped }()
		go func() {
			defer close(stopped)
			chunk := pattern(64<<10, 4)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				off := benchFileSize/2 + int64(i%(benchFileSize/2/len(chunk)))*int64(len(chunk))
				if _, err := f.WriteAt(chunk, off); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism(max(1, subs/procs))
	b.SetBytes(4096)
	b.ReportAllocs()
	var ids atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		buf := pattern(4096, 3)
		iov := [][]byte{buf}
		off := int64(ids.Add(1)*4096) % (benchFileSize / 2)
		for pb.Next() {
			var err error
			if fdatasync {
				if _, err = f.WriteAt(buf, off); err == nil {
					err = f.Flush()
				}
			} else {
				_, err = f.WritevAt(iov, off, true)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
