package kernelnbd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bad size is refused before any ioctl; a device that is not there is
// an error, not a hang. (The kernel side runs in the VM suite, where the
// CSI node grows a live /dev/nbdN with SetSize.)
func TestSetSizeRefusesBadInput(t *testing.T) {
	for _, size := range []uint64{0, 1000, 1<<62 + 512} {
		if err := SetSize("/dev/nbd0", size); err == nil || !strings.Contains(err.Error(), "multiple of 512") {
			t.Errorf("SetSize(%d): %v", size, err)
		}
	}
	missing := filepath.Join(t.TempDir(), "nbd99")
	if err := SetSize(missing, 1<<20); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SetSize of a missing device: %v", err)
	}
	if _, err := Size(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Size of a missing device: %v", err)
	}
}
