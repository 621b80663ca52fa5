package thinmeta_test

import (
	"os"
	"testing"

	"github.com/thind-storage/thind/internal/pooltest"
)

// TestMain reports the pools the tests made, every one checked by
// thind's checker and thin_check when its test ended.
func TestMain(m *testing.M) {
	os.Exit(pooltest.M(m).Run())
}
