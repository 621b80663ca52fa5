package thinpool_test

import (
	"testing"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/blk/blktest"
	"github.com/thind-storage/thind/bm"
)

// TestMemDataMeetsTheBackendContract holds the crash-simulating memory
// data device the engine's tests use to the rules every blk.Backend keeps,
// so that what those tests show holds for files and block devices too.
func TestMemDataMeetsTheBackendContract(t *testing.T) {
	blktest.Run(t, func(t *testing.T, size int64) blk.Backend {
		return memData{bm.NewMemDevice(size)}
	}, blktest.Options{DiscardZeroes: true})
}
