package nbd

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
)

// backendFactories build each Backend in this package, so one contract
// test runs against all of them.
var backendFactories = []struct {
	name string
	new  func(t *testing.T, size int64) Backend
}{
	{"memory", func(t *testing.T, size int64) Backend { return NewMemory(size, MemoryOptions{}) }},
	{"file", func(t *testing.T, size int64) Backend {
		path := filepath.Join(t.TempDir(), "disk.img")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		f, err := OpenFile(path, FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}},
}

// byte states of the contract model.
const (
	stZero    = iota // reads as zero (never written, zeroed)
	stData           // written; must read back and must not be a hole
	stTrimmed        // trimmed: old data or zeros are both fine
)

// TestBackendContract runs random operations against each backend and a
// byte-level model, checking reads, and after every step that block status
// obeys the Backend contract: contiguous positive extents from the offset,
// within the export, at most max, holes and zero extents reading as
// zeros, and written data never reported as a hole.
func TestBackendContract(t *testing.T) {
	const size = 4 << 20
	for _, bf := range backendFactories {
		t.Run(bf.name, func(t *testing.T) {
			seed := randtest.Seed(t)
			rng := randtest.Stream(seed, 7)
			be := bf.new(t, size)
			ctx := t.Context()
			if be.Size() != size {
				t.Fatalf("size %d", be.Size())
			}
			data := make([]byte, size)  // model contents (for stData)
			state := make([]byte, size) // model state per byte
			for step := range 300 {
				off := rng.Int64N(size)
				n := 1 + rng.Int64N(min(size-off, 256<<10))
				if rng.IntN(4) == 0 { // page-aligned now and then
					off &^= 4095
					n = (n + 4095) &^ 4095
					n = min(n, size-off)
				}
				switch op := rng.IntN(6); op {
				case 0, 1:
					p := make([]byte, n)
					for i := range p {
						p[i] = byte(rng.Uint32()) | 1 // non-zero, so holes show
					}
					if err := be.WriteAt(ctx, p, off, 0); err != nil {
						t.Fatalf("step %d: write %d+%d: %v", step, off, n, err)
					}
					copy(data[off:], p)
					for i := off; i < off+n; i++ {
						state[i] = stData
					}
				case 2:
					if err := be.Trim(ctx, off, n, 0); err != nil {
						t.Fatalf("step %d: trim %d+%d: %v", step, off, n, err)
					}
					for i := off; i < off+n; i++ {
						if state[i] == stData {
							state[i] = stTrimmed
						}
					}
				case 3, 4:
					var f Flags
					if rng.IntN(2) == 0 {
						f |= FlagNoHole
					}
					if rng.IntN(2) == 0 {
						f |= FlagFastZero
					}
					before := make([]byte, n)
					be.ReadAt(ctx, before, off)
					err := be.Zero(ctx, off, n, f)
					if errors.Is(err, ErrNotSupported) {
						if f&FlagFastZero == 0 {
							t.Fatalf("step %d: ENOTSUP without FAST_ZERO", step)
						}
						after := make([]byte, n)
						be.ReadAt(ctx, after, off)
						if !bytes.Equal(before, after) {
							t.Fatalf("step %d: a refused fast zero changed data", step)
						}
						continue
					}
					if err != nil {
						t.Fatalf("step %d: zero %d+%d flags %d: %v", step, off, n, f, err)
					}
					for i := off; i < off+n; i++ {
						state[i] = stZero
					}
				default:
					checkRead(t, be, data, state, off, n)
				}
				checkStatus(t, be, state, rng.Int64N(size), rng.IntN(8)+1)
			}
			checkRead(t, be, data, state, 0, size)
		})
	}
}

func checkRead(t *testing.T, be Backend, data, state []byte, off, n int64) {
	t.Helper()
	got := make([]byte, n)
	if err := be.ReadAt(t.Context(), got, off); err != nil {
		t.Fatalf("read %d+%d: %v", off, n, err)
	}
	for i := range got {
		at := off + int64(i)
		switch state[at] {
		case stZero:
			if got[i] != 0 {
				t.Fatalf("byte %d reads %#x, want zero", at, got[i])
			}
		case stData:
			if got[i] != data[at] {
				t.Fatalf("byte %d reads %#x, want %#x", at, got[i], data[at])
			}
		case stTrimmed:
			if got[i] != 0 && got[i] != data[at] {
				t.Fatalf("trimmed byte %d reads %#x, neither old nor zero", at, got[i])
			}
		}
	}
}

func checkStatus(t *testing.T, be Backend, state []byte, off int64, max int) {
	t.Helper()
	size := be.Size()
	n := size - off
	ext, err := be.BlockStatus(t.Context(), off, n, max, nil)
	if err != nil {
		t.Fatalf("block status %d+%d: %v", off, n, err)
	}
	if len(ext) == 0 || len(ext) > max {
		t.Fatalf("block status %d+%d max %d: %d extents", off, n, max, len(ext))
	}
	pos := off
	for i, e := range ext {
		if e.Length <= 0 || pos+e.Length > size {
			t.Fatalf("extent %d %+v at %d outside the export", i, e, pos)
		}
		if e.Flags&ExtentZero != 0 {
			got := make([]byte, e.Length)
			be.ReadAt(t.Context(), got, pos)
			if !bytes.Equal(got, make([]byte, e.Length)) {
				t.Fatalf("zero extent %+v at %d does not read as zeros", e, pos)
			}
		}
		if e.Flags&ExtentHole != 0 {
			for at := pos; at < pos+e.Length; at++ {
				if state[at] == stData {
					t.Fatalf("written byte %d reported in hole extent %+v at %d", at, e, pos)
				}
			}
		}
		pos += e.Length
	}
}

func TestMemoryLimitRefusesWritesWithoutPartialEffects(t *testing.T) {
	m := NewMemory(1<<20, MemoryOptions{Limit: 2 * memPageSize})
	ctx := t.Context()
	if err := m.WriteAt(ctx, []byte{1}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteAt(ctx, make([]byte, 2*memPageSize), memPageSize, 0); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("write over the limit: %v, want ErrNoSpace", err)
	}
	if got := m.Allocated(); got != memPageSize {
		t.Fatalf("allocated %d after a refused write", got)
	}
	if err := m.Zero(ctx, memPageSize, 3*memPageSize, FlagNoHole); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("NO_HOLE zero over the limit: %v", err)
	}
	// Deallocating zeroes need no space.
	if err := m.Zero(ctx, 0, 1<<20, 0); err != nil || m.Allocated() != 0 {
		t.Fatalf("zero: %v, allocated %d", err, m.Allocated())
	}
}

func TestMemoryReportsNoHoleZeroesAsAllocatedZero(t *testing.T) {
	m := NewMemory(1<<20, MemoryOptions{})
	ctx := t.Context()
	m.Zero(ctx, 4096, 8192, FlagNoHole)
	ext, _ := m.BlockStatus(ctx, 0, 1<<20, 10, nil)
	want := []Extent{{4096, ExtentHole | ExtentZero}, {8192, ExtentZero}, {1<<20 - 12288, ExtentHole | ExtentZero}}
	if fmt.Sprint(ext) != fmt.Sprint(want) {
		t.Fatalf("extents %v, want %v", ext, want)
	}
	m.WriteAt(ctx, []byte{9}, 4096, 0)
	ext, _ = m.BlockStatus(ctx, 4096, 8192, 10, nil)
	if want := []Extent{{4096, 0}, {4096, ExtentZero}}; fmt.Sprint(ext) != fmt.Sprint(want) {
		t.Fatalf("after a write: extents %v, want %v", ext, want)
	}
}
