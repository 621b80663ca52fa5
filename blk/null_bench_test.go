package blk

import (
	"context"
	"fmt"
	"testing"
)

// nullBackend completes every request at once without touching memory,
// like the kernel's null_blk driver: it isolates the dispatcher's own cost.
type nullBackend struct{ size int64 }

func (nullBackend) ReadAt(p []byte, off int64) (int, error)  { return len(p), nil }
func (nullBackend) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }
func (nullBackend) ReadvAt(bufs [][]byte, off int64) (int, error) {
	return iovLen(bufs), nil
}
func (nullBackend) WritevAt(bufs [][]byte, off int64, fua bool) (int, error) {
	return iovLen(bufs), nil
}
func (nullBackend) Discard(off, n int64) error     { return nil }
func (nullBackend) WriteZeroes(off, n int64) error { return nil }
func (nullBackend) Flush() error                   { return nil }
func (b nullBackend) Size() (int64, error)         { return b.size, nil }
func (nullBackend) Close() error                   { return nil }

// BenchmarkOverhead is the dispatcher's cost per request on a null
// backend: synchronous 4 KiB reads and writes (direct issue), an
// asynchronous write (through a software queue and a worker), and a
// plugged batch of 16 contiguous writes (sort, merge, one worker call),
// per request. ns/op here is what a request pays on top of its system call.
func BenchmarkOverhead(b *testing.B) {
	for _, subs := range []int{1, benchSubmitters} {
		b.Run(fmt.Sprintf("op=read/sub=%d", subs), func(b *testing.B) {
			d := nullDispatcher(b)
			ctx := context.Background()
			runNull(b, subs, func(buf []byte, off int64) { d.Read(ctx, buf, off) })
		})
		b.Run(fmt.Sprintf("op=write/sub=%d", subs), func(b *testing.B) {
			d := nullDispatcher(b)
			ctx := context.Background()
			runNull(b, subs, func(buf []byte, off int64) { d.Write(ctx, buf, off, false) })
		})
	}
	b.Run("op=asyncwrite/sub=1", func(b *testing.B) {
		d := nullDispatcher(b)
		done := make(completions, 1)
		r := &Request{Op: OpWrite, Buf: make([]byte, 4096), End: done.end}
		b.ReportAllocs()
		for b.Loop() {
			if err := d.Submit(context.Background(), r); err != nil {
				b.Fatal(err)
			}
			<-done
		}
	})
	b.Run("op=pluggedwrite/sub=1", func(b *testing.B) {
		const batch = 16
		d := nullDispatcher(b)
		done := make(completions, batch)
		reqs := make([]Request, batch)
		for i := range reqs {
			reqs[i] = Request{Op: OpWrite, Off: int64(i * 4096), Buf: make([]byte, 4096), End: done.end}
		}
		p := d.NewPlug()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := p.Submit(context.Background(), &reqs[i%batch]); err != nil {
				b.Fatal(err)
			}
			if i++; i%batch == 0 {
				p.Finish()
				done.wait(b, batch)
			}
		}
		p.Finish()
		done.wait(b, i%batch)
	})
}

func nullDispatcher(b *testing.B) *Dispatcher {
	d, err := New(nullBackend{size: benchFileSize}, Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

func runNull(b *testing.B, subs int, op func(buf []byte, off int64)) {
	b.ReportAllocs()
	if subs == 1 {
		buf := make([]byte, 4096)
		for i := 0; b.Loop(); i++ {
			op(buf, int64(i%1024)*4096)
		}
		return
	}
	runSubmitters(b, 4096, func(buf []byte, off int64) error { op(buf, off); return nil })
}
