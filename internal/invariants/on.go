//go:build invariants

package invariants

// Enabled reports whether the build checks invariants.
const Enabled = true
