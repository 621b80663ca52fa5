package btree

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
)

// TestRandomOpsManySeeds runs the model test over THIND_BTREE_SEEDS more
// seeds (none by default): the long run, on demand.
func TestRandomOpsManySeeds(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("THIND_BTREE_SEEDS"))
	if n <= 0 {
		t.Skip("set THIND_BTREE_SEEDS=N for the long run")
	}
	for _, levels := range []int{1, 2} {
		t.Run(fmt.Sprintf("levels=%d", levels), func(t *testing.T) {
			randtest.Each(t, n, func(t *testing.T, seed uint64) {
				randomOps(t, levels, seed, 8, 1500)
			})
		})
	}
}
