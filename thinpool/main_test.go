package thinpool_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: a
// closed pool must have stopped its committer, dispatcher workers and
// every request queued for space.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
