// Package blktest holds contract tests that any blk.Backend must pass, so
// that every implementation is held to the same rules, the way
// thin-provisioning-tools runs one test set against every space map. It
// runs against blk.File (blk/contract_test.go), blk.BlockDevice on loop
// devices when the tests run as root (same file), and the engine's
// crash-simulating memory device (thinpool/memdata_test.go).
package blktest

import (
	"bytes"
	"context"
	"testing"

	"github.com/thind-storage/thind/blk"
)

// Options describe what a backend under test promises beyond the
// interface.
type Options struct {
	// DiscardZeroes says that discarded ranges read back as zeros.
	DiscardZeroes bool
}

// Open returns a new backend of exactly size bytes, filled with zeros. The
// contract closes it. Offsets, lengths and buffers in the contract are
// multiples of 4096, so O_DIRECT and 4K-sector backends qualify.
type Open func(t *testing.T, size int64) blk.Backend

const size = 1 << 20

// Run runs the contract against backends from open, directly and through
// a dispatcher.
func Run(t *testing.T, open Open, opt Options) {
	t.Run("size is what was asked", func(t *testing.T) {
		b := open(t, size)
		defer closeBackend(t, b)
		if got, err := b.Size(); err != nil || got != size {
			t.Fatalf("Size() = %d, %v; want %d", got, err, size)
		}
	})
	t.Run("writes read back", func(t *testing.T) {
		b := open(t, size)
		defer closeBackend(t, b)
		want := fill(t, 64<<10, 1)
		if n, err := b.WriteAt(want, 8192); err != nil || n != len(want) {
			t.Fatalf("WriteAt = %d, %v", n, err)
		}
		got := buffer(t, len(want))
		if n, err := b.ReadAt(got, 8192); n != len(got) {
			t.Fatalf("ReadAt = %d, %v", n, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatal("read back other bytes")
		}
		if err := b.Flush(); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	})
	t.Run("write zeroes reads back zeros", func(t *testing.T) {
		b := open(t, size)
		defer closeBackend(t, b)
		if _, err := b.WriteAt(fill(t, size, 2), 0); err != nil {
			t.Fatal(err)
		}
		if err := b.WriteZeroes(4096, 16384); err != nil {
			t.Fatalf("WriteZeroes: %v", err)
		}
		got := buffer(t, 24576)
		if _, err := b.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		want := fill(t, size, 2)[:24576]
		clear(want[4096:20480])
		if !bytes.Equal(got, want) {
			t.Fatal("write zeroes left other bytes, or zeroed outside its range")
		}
	})
	t.Run("discard", func(t *testing.T) {
		b := open(t, size)
		defer closeBackend(t, b)
		if _, err := b.WriteAt(fill(t, 65536, 3), 0); err != nil {
			t.Fatal(err)
		}
		if err := b.Discard(4096, 8192); err != nil {
			t.Fatalf("Discard: %v", err)
		}
		got := buffer(t, 65536)
		if _, err := b.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		want := fill(t, 65536, 3)
		if !bytes.Equal(got[:4096], want[:4096]) || !bytes.Equal(got[12288:], want[12288:]) {
			t.Fatal("discard changed bytes outside its range")
		}
		if opt.DiscardZeroes && !bytes.Equal(got[4096:12288], make([]byte, 8192)) {
			t.Fatal("discarded range does not read back as zeros")
		}
	})
	t.Run("vectored calls match plain ones", func(t *testing.T) {
		b := open(t, size)
		defer closeBackend(t, b)
		vb, ok := b.(blk.VectoredBackend)
		if !ok {
			t.Skip("not a VectoredBackend")
		}
		bufs := [][]byte{fill(t, 4096, 4), fill(t, 8192, 5)}
		if n, err := vb.WritevAt(bufs, 4096, true); err != nil || n != 12288 {
			t.Fatalf("WritevAt = %d, %v", n, err)
		}
		got := buffer(t, 12288)
		if _, err := b.ReadAt(got, 4096); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, bytes.Join(bufs, nil)) {
			t.Fatal("vectored write read back other bytes")
		}
		back := [][]byte{buffer(t, 8192), buffer(t, 4096)}
		if n, err := vb.ReadvAt(back, 4096); err != nil || n != 12288 {
			t.Fatalf("ReadvAt = %d, %v", n, err)
		}
		if !bytes.Equal(bytes.Join(back, nil), got) {
			t.Fatal("vectored read differs from plain read")
		}
	})
	t.Run("through a dispatcher", func(t *testing.T) {
		d, err := blk.New(open(t, size), blk.Config{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		want := fill(t, 4096*8, 6)
		done := make(chan error, 8)
		p := d.NewPlug()
		reqs := make([]blk.Request, 8)
		for i := range reqs {
			reqs[i] = blk.Request{Op: blk.OpWrite, Off: int64(i * 4096), Buf: want[i*4096 : (i+1)*4096],
				End: func(_ *blk.Request, err error) { done <- err }}
			if err := p.Submit(ctx, &reqs[i]); err != nil {
				t.Fatal(err)
			}
		}
		p.Finish()
		for range reqs {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		got := buffer(t, len(want))
		if err := d.Read(ctx, got, 0); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("merged writes read back wrong: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func closeBackend(t *testing.T, b blk.Backend) {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// buffer returns a page-aligned buffer, good for O_DIRECT backends too.
func buffer(t *testing.T, n int) []byte {
	t.Helper()
	b, err := blk.AlignedBuffer(n, 4096)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fill returns an aligned buffer of deterministic bytes for seed.
func fill(t *testing.T, n int, seed byte) []byte {
	b := buffer(t, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
