package bioprison

import (
	"flag"
	"math/rand/v2"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: the
// prison starts none, and a blocked Lock that is never woken would show here.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var seedFlag = flag.Uint64("seed", 0, "seed for randomised tests (0 picks one)")

// seeded returns the seed of a randomised test, logged so that a failure
// can be replayed with -seed, and a generator made from it.
func seeded(t testing.TB) (uint64, *rand.Rand) {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay with -seed=%d)", seed, seed)
	return seed, rand.New(rand.NewPCG(seed, seed>>32))
}
