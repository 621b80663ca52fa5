package bioprison

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: the
// prison starts none, and a blocked Lock that is never woken would show here.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
