package control_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/thind-storage/thind/internal/pooltest"
)

// TestMain fails the package on a leaked goroutine or an unchecked pool.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pooltest.M(m))
}
