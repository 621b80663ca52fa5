package blk_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/blk/blktest"
)

func TestFileMeetsTheBackendContract(t *testing.T) {
	for _, direct := range []bool{false, true} {
		name := map[bool]string{false: "buffered", true: "O_DIRECT"}[direct]
		t.Run(name, func(t *testing.T) {
			blktest.Run(t, func(t *testing.T, size int64) blk.Backend {
				path := filepath.Join(t.TempDir(), "backing")
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(path, size); err != nil {
					t.Fatal(err)
				}
				f, err := blk.OpenFile(path, blk.FileOptions{Direct: direct})
				if err != nil {
					t.Fatal(err)
				}
				return f
			}, blktest.Options{DiscardZeroes: true})
		})
	}
}
