package catalog

import (
	"testing"

	"github.com/thind-storage/thind/internal/pooltest"
	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: pebble
// runs its flushes and compactions on goroutines that only Close stops,
// so a test that forgets to close a catalog shows here. pooltest.M fails
// it too if a pool a test made escaped its check.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pooltest.M(m))
}
