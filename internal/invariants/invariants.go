// Package invariants switches thind's expensive internal assertions on,
// as pebble's internal/invariants does: built with -tags invariants,
// Enabled is true and the packages check what their fast paths rely on
// (node ordering after every B-tree change, space-map counts against a
// recount, prison cells against their queue, lookup-cache answers against
// the tree, the lock order). Without the tag Enabled is a false constant,
// so every check is dead code the compiler drops.
//
// A broken invariant panics with Violation: it is a bug in thind, not bad
// input, and the test that provoked it fails on the spot.
package invariants

import "fmt"

// Violation panics with a message naming the broken invariant.
func Violation(format string, args ...any) {
	panic("invariant violated: " + fmt.Sprintf(format, args...))
}
