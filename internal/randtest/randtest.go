// Package randtest is the one seed convention of thind's randomised tests.
//
// Without flags every test draws a fresh seed, so that CI explores new
// cases on every run; -seed=N replays one run exactly. A test that fails
// prints its seed and the command that replays it, so the seed need not
// be looked for in the log. A generator is made from a seed in one way
// only (FromSeed), so a seed means the same sequence in every package.
//
// The flag is defined here once; a test binary gets it by importing the
// package, which only tests do.
package randtest

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomised tests (0: a new seed per test); a failing test prints its own")

// Seed returns the seed t runs with: -seed if given, else a new random
// one. It is printed, with the command that replays it, if t fails.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64() | 1 // never 0, which means "pick one"
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d: replay with %s", seed, Replay(t, seed))
		}
	})
	return seed
}

// New returns a generator for t, seeded with Seed(t).
func New(t testing.TB) *rand.Rand {
	t.Helper()
	return FromSeed(Seed(t))
}

// FromSeed returns the generator a seed stands for.
func FromSeed(seed uint64) *rand.Rand { return Stream(seed, 0) }

// Stream returns the i-th of a seed's independent generators, for a test
// that gives each goroutine, connection or round its own (stream 0 is
// FromSeed's), so that one seed still replays the whole test.
func Stream(seed, i uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed>>32^i*0x9E3779B97F4A7C15))
}

// Each runs fn in n subtests, each with its own seed, named after it; with
// -seed only that seed runs, once.
func Each(t *testing.T, n int, fn func(t *testing.T, seed uint64)) {
	t.Helper()
	seeds := make([]uint64, 0, n)
	if *seedFlag != 0 {
		seeds = append(seeds, *seedFlag)
	} else {
		for range n {
			seeds = append(seeds, rand.Uint64()|1)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("seed %d: replay with %s", seed, Replay(t, seed))
				}
			})
			fn(t, seed)
		})
	}
}

// Replay is the go test command line that runs t again with seed.
func Replay(t testing.TB, seed uint64) string {
	name := t.Name()
	if top, _, ok := strings.Cut(name, "/"); ok {
		name = top
	}
	return fmt.Sprintf("go test -run '^%s$' -seed=%d", name, seed)
}
