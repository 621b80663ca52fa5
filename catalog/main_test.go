package catalog

import (
	"flag"
	"math/rand/v2"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: pebble
// runs its flushes and compactions on goroutines that only Close stops,
// so a test that forgets to close a catalog shows here.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var seedFlag = flag.Uint64("seed", 0, "seed for randomised tests (0 picks one)")

// seeded returns a generator for a randomised test and logs its seed, so
// that a failure can be replayed with -seed.
func seeded(t testing.TB) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay with -seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed>>32))
}
