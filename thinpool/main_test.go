package thinpool_test

import (
	"testing"

	"github.com/thind-storage/thind/internal/pooltest"
	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: a
// closed pool must have stopped its committer, dispatcher workers and
// every request queued for space.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pooltest.M(m))
}
