package blk

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thind-storage/thind/internal/loopfstest"
)

// TestCopyClonesOnXFSAndCopiesInTheKernelOnExt4 copies within a backing
// file on real file systems: XFS with reflink clones the range (no free
// space is used, and overwriting the copy leaves the source alone), ext4
// takes copy_file_range (the copy occupies new space). Either way the
// copy reads back as the source.
func TestCopyClonesOnXFSAndCopiesInTheKernelOnExt4(t *testing.T) {
	const size, n = 32 << 20, 8 << 20
	for _, kind := range loopfstest.Kinds {
		t.Run(kind, func(t *testing.T) {
			mnt := loopfstest.Mount(t, kind, 512<<20)
			path := filepath.Join(mnt, "data")
			src := bytes.Repeat([]byte("0123456789abcdef"), n/16)
			if err := os.WriteFile(path, src, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, size); err != nil {
				t.Fatal(err)
			}
			f, err := OpenFile(path, FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			d, err := New(f, Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ctx := context.Background()
			if err := d.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			before := freeBytes(t, mnt)
			if err := d.Copy(ctx, 0, 16<<20, n); err != nil {
				t.Fatal(err)
			}
			if err := d.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			used := before - freeBytes(t, mnt)
			got := make([]byte, n)
			if err := d.Read(ctx, got, 16<<20); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, src) {
				t.Fatal("the copy does not read back as its source")
			}
			switch kind {
			case "xfs-reflink":
				if f.noClone.Load() || used > 1<<20 {
					t.Fatalf("clone not used (noClone %v): the copy of %d bytes took %d bytes of free space", f.noClone.Load(), n, used)
				}
			case "ext4":
				if !f.noClone.Load() || f.noCopyRange.Load() || used < n {
					t.Fatalf("want copy_file_range (noClone %v, noCopyRange %v), and %d bytes used, got %d",
						f.noClone.Load(), f.noCopyRange.Load(), n, used)
				}
			}
			if d.noCopy.Load() {
				t.Fatal("the dispatcher copies through memory")
			}
			// Writing into the copy must not reach the source, shared or not.
			if err := d.Write(ctx, make([]byte, 4096), 16<<20+4096, false); err != nil {
				t.Fatal(err)
			}
			if err := d.Read(ctx, got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, src) {
				t.Fatal("a write into the copy changed its source")
			}
		})
	}
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bfree) * st.Bsize
}

// refusingCopier is a file whose CopyRange always reports ErrNotSupported,
// as a store without clone or copy_file_range does.
type refusingCopier struct {
	*File
	calls int
}

func (r *refusingCopier) CopyRange(src, dst, n int64) error {
	r.calls++
	return ErrNotSupported
}

// TestCopyFallsBackToReadAndWrite: a backend that cannot copy by itself,
// or says so once, gets its copies read and written by the dispatcher,
// in chunks bounded by its buffer; bad copies fail before reaching it.
func TestCopyFallsBackToReadAndWrite(t *testing.T) {
	ctx := context.Background()
	const n = 3*copyChunk + 4096 // several chunks and a partial one
	for _, refuse := range []bool{false, true} {
		path := newBackingFile(t, 8<<20)
		src := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, n/7+1)[:n]
		if err := os.WriteFile(path, src, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Truncate(path, 8<<20)
		f, err := OpenFile(path, FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var be Backend = struct{ Backend }{f} // hides CopyRange
		rc := &refusingCopier{File: f}
		if refuse {
			be = rc
		}
		d, err := New(be, Config{})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := d.Copy(ctx, 0, 4<<20, n); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]byte, n)
		if err := d.Read(ctx, got, 4<<20); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, src) {
			t.Fatalf("refuse=%v: the copy through memory does not read back as its source", refuse)
		}
		if refuse && rc.calls != 1 {
			t.Fatalf("CopyRange called %d times after reporting ErrNotSupported once", rc.calls)
		}
		if refuse && !d.noCopy.Load() {
			t.Fatal("the dispatcher still asks a backend that refused to copy")
		}
		var overlap *OverlapError
		if err := d.Copy(ctx, 0, 4096, 8192); !errors.As(err, &overlap) {
			t.Fatalf("overlapping copy: %v", err)
		}
		var rangeErr *RangeError
		if err := d.Copy(ctx, 8<<20-4096, 0, 8192); !errors.As(err, &rangeErr) {
			t.Fatalf("copy from past the end: %v", err)
		}
		if err := d.Copy(ctx, 0, 8<<20-4096, 8192); !errors.As(err, &rangeErr) {
			t.Fatalf("copy to past the end: %v", err)
		}
		if st := d.Stats().Total(); st.Ops[OpCopy].Requests != 2 {
			t.Fatalf("%d copies counted, want 2", st.Ops[OpCopy].Requests)
		}
		d.Close()
	}
}

// TestPluggedCopiesAreNeverMerged: contiguous copies submitted in a plug
// run one backend call each (a merged copy would take one request's
// source for all), and each lands where it was sent.
func TestPluggedCopiesAreNeverMerged(t *testing.T) {
	const n, chunk = 8, 64 << 10
	d, _ := newTestDispatcher(t, 4<<20, Config{HardwareQueues: 1, QueueDepth: 2 * n, PlugLimit: 2 * n}, FileOptions{})
	ctx := t.Context()
	src := pattern(n*chunk, 9)
	if err := d.Write(ctx, src, 0, false); err != nil {
		t.Fatal(err)
	}
	done := make(completions, n)
	reqs := make([]Request, n)
	p := d.NewPlug()
	for i := range reqs {
		// Sources in reverse order, destinations contiguous.
		reqs[i] = Request{Op: OpCopy, Src: int64((n - 1 - i) * chunk), Off: int64(2<<20 + i*chunk), Len: chunk, End: done.end}
		if err := p.Submit(ctx, &reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	p.Finish()
	if err := done.wait(t, n); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, n*chunk)
	if err := d.Read(ctx, got, 2<<20); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if !bytes.Equal(got[i*chunk:(i+1)*chunk], src[(n-1-i)*chunk:(n-i)*chunk]) {
			t.Fatalf("copy %d landed wrong", i)
		}
	}
	if st := d.Stats().Total(); st.Ops[OpCopy].Requests != n || st.Merges != 0 {
		t.Fatalf("%d copies, %d merges; want %d and 0", st.Ops[OpCopy].Requests, st.Merges, n)
	}
}
