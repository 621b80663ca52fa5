package blk

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newBackingFile creates a file of size bytes in a test directory.
func newBackingFile(t testing.TB, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backing")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// newTestDispatcher opens a dispatcher on a fresh file and closes it when
// the test ends (unless the test closed it).
func newTestDispatcher(t testing.TB, size int64, cfg Config, opt FileOptions) (*Dispatcher, string) {
	t.Helper()
	path := newBackingFile(t, size)
	f, err := OpenFile(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(f, cfg)
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil && err != ErrClosed {
			t.Errorf("close: %v", err)
		}
	})
	return d, path
}

// pattern fills a buffer with bytes derived from seed, so that different
// writes are told apart when read back.
func pattern(n int, seed int64) []byte {
	b := make([]byte, n)
	fillPattern(b, seed)
	return b
}

func fillPattern(b []byte, seed int64) {
	x := uint64(seed)*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}

// fileBytes reads a whole file with the os package, independent of blk.
func fileBytes(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// firstDiff describes where two byte slices first differ, for failures
// that would otherwise dump megabytes.
func firstDiff(a, b []byte) string {
	if len(a) != len(b) {
		return fmt.Sprintf("lengths %d != %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Sprintf("byte %d (block %d): %#x != %#x", i, i/4096, a[i], b[i])
		}
	}
	return "equal"
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
