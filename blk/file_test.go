package blk

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func openTestFile(t *testing.T, size int64, opt FileOptions) (*File, string) {
	t.Helper()
	path := newBackingFile(t, size)
	f, err := OpenFile(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

// allocatedBytes is what the file system has allocated for path.
func allocatedBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512 // st_blocks is in 512-byte units whatever the block size
}

func TestDiscardPunchesAHoleThatReadsBackAsZeros(t *testing.T) {
	const size, hole = 4 << 20, 1 << 20
	d, path := newTestDispatcher(t, size, Config{}, FileOptions{})
	ctx := t.Context()
	data := pattern(size, 7)
	if err := d.Write(ctx, data, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before := allocatedBytes(t, path)
	if before < size {
		t.Fatalf("only %d bytes allocated after writing %d", before, size)
	}
	if err := d.Discard(ctx, 1<<20, hole); err != nil {
		t.Fatal(err)
	}
	after := allocatedBytes(t, path)
	if before-after < hole {
		t.Errorf("discard of %d bytes freed only %d (allocated %d -> %d)", hole, before-after, before, after)
	}
	got := make([]byte, size)
	if err := d.Read(ctx, got, 0); err != nil {
		t.Fatal(err)
	}
	clear(data[1<<20 : 1<<20+hole])
	if !bytes.Equal(got, data) {
		t.Fatalf("after discard: %s", firstDiff(got, data))
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != size {
		t.Fatalf("discard changed the file size: %v, %v", fi.Size(), err)
	}
}

// WriteZeroes falls back from ZERO_RANGE to punching a hole to writing
// zeros; each path must leave zeros, and ZERO_RANGE must keep the space.
func TestWriteZeroesEveryFallbackZeroes(t *testing.T) {
	const size = 1 << 20
	tests := []struct {
		name           string
		noZeroRange    bool
		noPunch        bool
		wantKeepsSpace bool
	}{
		{"zero range", false, false, true},
		{"punch hole when zero range is missing", true, false, false},
		{"writing zeros when both are missing", true, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, path := openTestFile(t, size, FileOptions{})
			data := pattern(size, 3)
			if _, err := f.WriteAt(data, 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
			before := allocatedBytes(t, path)
			f.noZeroRange.Store(tc.noZeroRange)
			f.noPunch.Store(tc.noPunch)
			if err := f.WriteZeroes(64<<10, 512<<10); err != nil {
				t.Fatal(err)
			}
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
			clear(data[64<<10 : 576<<10])
			got := make([]byte, size)
			if _, err := f.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%s", firstDiff(got, data))
			}
			after := allocatedBytes(t, path)
			if keeps := after >= before; keeps != tc.wantKeepsSpace {
				t.Errorf("allocated %d -> %d bytes; want space kept: %v", before, after, tc.wantKeepsSpace)
			}
		})
	}
}

func TestVectoredIOAndFUARoundTrip(t *testing.T) {
	f, _ := openTestFile(t, 1<<20, FileOptions{})
	bufs := [][]byte{pattern(4096, 1), pattern(100, 2), pattern(8192, 3)}
	for _, fua := range []bool{false, true} {
		n, err := f.WritevAt(bufs, 10_000, fua)
		if err != nil || n != 4096+100+8192 {
			t.Fatalf("WritevAt(fua=%v) = %d, %v", fua, n, err)
		}
		got := [][]byte{make([]byte, 4096), make([]byte, 100), make([]byte, 8192)}
		n, err = f.ReadvAt(got, 10_000)
		if err != nil || n != 4096+100+8192 {
			t.Fatalf("ReadvAt = %d, %v", n, err)
		}
		if !bytes.Equal(bytes.Join(got, nil), bytes.Join(bufs, nil)) {
			t.Fatal("vectored read differs from vectored write")
		}
	}
	// A short transfer at the end of the file is finished buffer by buffer
	// and reports io.EOF like ReadAt.
	got := [][]byte{make([]byte, 4096), make([]byte, 4096)}
	n, err := f.ReadvAt(got, 1<<20-6000)
	if n != 6000 || !errors.Is(err, io.EOF) {
		t.Fatalf("ReadvAt across the end = %d, %v; want 6000, EOF", n, err)
	}
}

func TestOpenFileRejectsWhatItCannotServe(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenFile(dir+"/missing", FileOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := OpenFile(dir, FileOptions{ReadOnly: true}); err == nil {
		t.Error("a directory was accepted")
	}
}

func TestDirectFileReportsItsAlignment(t *testing.T) {
	f, _ := openTestFile(t, 1<<20, FileOptions{Direct: true})
	mem, off := f.IOAlignment()
	if mem < 1 || off < 512 || off&(off-1) != 0 || mem&(mem-1) != 0 {
		t.Fatalf("O_DIRECT alignment mem %d off %d", mem, off)
	}
	t.Logf("O_DIRECT alignment: memory %d, offset %d", mem, off)
	buf, err := AlignedBuffer(off, mem)
	if err != nil {
		t.Fatal(err)
	}
	fillPattern(buf, 9)
	if _, err := f.WriteAt(buf, int64(off)); err != nil {
		t.Fatal(err)
	}
	got, _ := AlignedBuffer(off, mem)
	if _, err := f.ReadAt(got, int64(off)); err != nil || !bytes.Equal(got, buf) {
		t.Fatalf("O_DIRECT round trip: %v", err)
	}
	buffered, _ := openTestFile(t, 4096, FileOptions{})
	if mem, off := buffered.IOAlignment(); mem != 1 || off != 1 {
		t.Fatalf("buffered file asks for alignment %d/%d", mem, off)
	}
}

func TestAlignedBuffer(t *testing.T) {
	for _, align := range []int{1, 512, 4096, 1 << 16} {
		b, err := AlignedBuffer(12345, align)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 12345 || cap(b) != 12345 {
			t.Errorf("align %d: len %d cap %d", align, len(b), cap(b))
		}
		if addr := uintptrOf(b); addr%uintptr(align) != 0 {
			t.Errorf("align %d: address %#x", align, addr)
		}
	}
	for _, bad := range [][2]int{{-1, 4096}, {10, 0}, {10, 3000}} {
		if _, err := AlignedBuffer(bad[0], bad[1]); err == nil {
			t.Errorf("AlignedBuffer(%d, %d) accepted", bad[0], bad[1])
		}
	}
}

// Reads through a File leave the backing file's access time alone: under
// relatime a read of a file whose atime is older than its mtime would
// otherwise update it.
func TestReadsDoNotTouchAccessTime(t *testing.T) {
	path := t.TempDir() + "/data"
	if err := os.WriteFile(path, make([]byte, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(path, old, time.Now()); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if atime := time.Unix(st.Atim.Unix()); atime.After(old.Add(time.Second)) {
		t.Fatalf("reading moved the access time from %v to %v", old, atime)
	}
}
