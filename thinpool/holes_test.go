package thinpool_test

import (
	"bytes"
	"os"
	"strconv"
	"testing"

	"github.com/thind-storage/thind/thinpool"
)

// TestHolesAreProvisionedWithoutZeroing: on a sparse data file, a small
// first write to a block that is a hole stores just its own bytes (the
// hole reads zeros around them), also in space the data file gains when
// it grows; with IgnoreHoles every such block is zeroed in full. Either
// way the rest of the block reads back as zeros.
func TestHolesAreProvisionedWithoutZeroing(t *testing.T) {
	const blocks = 64
	for _, ignore := range []bool{false, true} {
		t.Run("IgnoreHoles="+strconv.FormatBool(ignore), func(t *testing.T) {
			e := newFileEnv(t, 16<<20, blocks*65536, thinpool.Config{IgnoreHoles: ignore})
			writeEachBlock := func(th *thinpool.Thin) {
				for b := uint64(0); b < blocks; b++ {
					if err := th.WriteAt(bg, []byte("new data"), b*65536+100, false); err != nil {
						t.Fatal(err)
					}
				}
				if err := e.pool.Commit(bg); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, blocks*65536)
				if err := th.ReadAt(bg, got, 0); err != nil {
					t.Fatal(err)
				}
				want := make([]byte, blocks*65536)
				for b := 0; b < blocks; b++ {
					copy(want[b*65536+100:], "new data")
				}
				if !bytes.Equal(got, want) {
					t.Fatal("provisioned blocks do not read back as the write and zeros")
				}
			}
			check := func(grew int64) {
				t.Helper()
				// A file system block or two per write, or all 64 KiB.
				if ignore && grew < blocks*65536 {
					t.Fatalf("data file grew by %d bytes: blocks were not zeroed", grew)
				}
				if !ignore && grew > blocks*8192 {
					t.Fatalf("data file grew by %d bytes for %d writes of 8 bytes into holes", grew, blocks)
				}
			}
			before := allocatedBytes(t, e.dataPath)
			writeEachBlock(e.thin(1, blocks*65536))
			check(allocatedBytes(t, e.dataPath) - before)

			// The pool is full; the data file doubles and the new half
			// is holes too.
			if err := os.Truncate(e.dataPath, 2*blocks*65536); err != nil {
				t.Fatal(err)
			}
			if err := e.pool.Resize(bg); err != nil {
				t.Fatal(err)
			}
			before = allocatedBytes(t, e.dataPath)
			writeEachBlock(e.thin(2, blocks*65536))
			check(allocatedBytes(t, e.dataPath) - before)
		})
	}
}
