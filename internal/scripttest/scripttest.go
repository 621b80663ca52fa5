// Package scripttest runs datadriven transcripts: testdata files of
// commands with their expected output, regenerated with -rewrite
// (github.com/cockroachdb/datadriven, as pebble uses it). Each file gets
// fresh state; a command that panics prints "panic: ..." into the
// transcript (its stack goes to the test log), so a script can show the
// invariant checks it trips.
package scripttest

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// Handler runs one command and returns its output.
type Handler func(t *testing.T, d *datadriven.TestData) string

// Walk runs every transcript under dir; newFile makes the state of one
// file and returns the handler of its commands.
func Walk(t *testing.T, dir string, newFile func(t *testing.T) Handler) {
	t.Helper()
	datadriven.Walk(t, dir, func(t *testing.T, path string) {
		h := newFile(t)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) (out string) {
			defer func() {
				if r := recover(); r != nil {
					t.Logf("%s: panic: %v\n%s", d.Pos, r, debug.Stack())
					out = fmt.Sprintf("panic: %v\n", r)
				}
			}()
			return h(t, d)
		})
	})
}

// sizeUnits are the suffixes a size may take, powers of 1024.
const sizeUnits = "KMGT"

// ParseSize reads a size: a number (decimal, or 0x hex) with an optional
// K, M, G or T suffix.
func ParseSize(s string) (uint64, error) {
	mult := uint64(1)
	if i := strings.IndexAny(s, sizeUnits); i >= 0 && i == len(s)-1 {
		mult = 1 << (10 * (1 + strings.IndexByte(sizeUnits, s[i])))
		s = s[:i]
	}
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if v > ^uint64(0)/mult {
		return 0, fmt.Errorf("size %s times %d overflows 64 bits", s, mult)
	}
	return v * mult, nil
}

// Size reads argument key of d as a size (ParseSize), failing the test if
// it is missing or malformed.
func Size(t *testing.T, d *datadriven.TestData, key string) uint64 {
	t.Helper()
	var s string
	d.ScanArgs(t, key, &s)
	v, err := ParseSize(s)
	if err != nil {
		t.Fatalf("%s: %s=: %v", d.Pos, key, err)
	}
	return v
}

// FormatSize prints n with the largest suffix that divides it exactly.
func FormatSize(n uint64) string {
	for i := len(sizeUnits) - 1; i >= 0; i-- {
		unit := uint64(1) << (10 * (i + 1))
		if n >= unit && n%unit == 0 {
			return fmt.Sprintf("%d%c", n/unit, sizeUnits[i])
		}
	}
	return strconv.FormatUint(n, 10)
}
