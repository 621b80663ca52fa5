package catalog

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: pebble
// runs its flushes and compactions on goroutines that only Close stops,
// so a test that forgets to close a catalog shows here.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
