package csi_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/thind-storage/thind/internal/pooltest"
)

// TestMain fails the package on a leaked goroutine or an unchecked pool.
// Ginkgo's interrupt handler lives as long as the process.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pooltest.M(m),
		goleak.IgnoreTopFunction("github.com/onsi/ginkgo/v2/internal/interrupt_handler.(*InterruptHandler).registerForInterrupts.func2"))
}
