package daemon_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a stopped daemon leaves a goroutine
// behind (NBD connections, control and metrics servers, the engine).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
