package test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/tooltest"
)

// fullPool starts thind on a 64 MiB pool and fills it with a volume
// "filler" written through NBD (and disconnected).
func fullPool(t *testing.T, extra ...string) *daemon {
	t.Helper()
	d := startDaemon(t, append([]string{"--data-size", "64M", "--default-size", "16M"}, extra...)...)
	d.mustCLI("volume", "create", "filler", "--size", "128M")
	out, _, _ := tooltest.RunErr(t, "qemu-io", pkgQemu, "-f", "raw", "-c", "write -P 0x66 0 64M", d.unixURI("filler"))
	if !strings.Contains(out, "No space left on device") && !strings.Contains(out, "wrote") {
		t.Fatalf("filling the pool: %s", out)
	}
	waitFor(t, "filler to be disconnected", 30*time.Second, func() error {
		if v := d.volume("filler"); v.Connections != 0 {
			return fmt.Errorf("%d connections", v.Connections)
		}
		return nil
	})
	return d
}

func poolMode(t *testing.T, d *daemon) string {
	t.Helper()
	for _, mode := range []string{"write", "out-of-data-space", "read-only", "fail"} {
		if metric(d.scrape(), fmt.Sprintf(`thind_pool_mode{mode=%q}`, mode)) == 1 {
			return mode
		}
	}
	t.Fatal("no pool mode is 1 in the metrics")
	return ""
}

// A full pool with --error-if-no-space fails writes with ENOSPC, says so
// in its mode, and deleting a volume (promptly) brings it back to write.
func TestAFullPoolFailsWritesUntilAVolumeIsDeleted(t *testing.T) {
	d := fullPool(t, "--error-if-no-space")
	out, _, _ := tooltest.RunErr(t, "qemu-io", pkgQemu, "-f", "raw", "-c", "write -P 1 0 1M", d.unixURI("default"))
	if !strings.Contains(out, "No space left on device") {
		t.Fatalf("a write to a full pool: %s", out)
	}
	if m := poolMode(t, d); m != "out-of-data-space" {
		t.Errorf("mode %s on a full pool", m)
	}
	if n := metric(d.scrape(), `thind_volume_errors_total{errno="ENOSPC",volume="default"}`); n < 1 {
		t.Errorf("ENOSPC errors counted: %v", n)
	}
	start := time.Now()
	d.mustCLI("volume", "delete", "filler")
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("deleting a volume of a full pool took %v", took)
	}
	out = tooltest.Run(t, "qemu-io", pkgQemu, "-f", "raw", "-c", "write -P 2 0 1M", "-c", "read -P 2 0 1M", d.unixURI("default"))
	if strings.Contains(out, "failed") {
		t.Fatalf("a write after the delete: %s", out)
	}
	if m := poolMode(t, d); m != "write" {
		t.Errorf("mode %s after the delete freed space", m)
	}
}

// Without --error-if-no-space, a write to a full pool waits; deleting a
// volume lets it complete.
func TestAQueuedWriteCompletesWhenAVolumeIsDeleted(t *testing.T) {
	d := fullPool(t)
	c, buf, done := queueWrite(t, d, 0x42)
	select {
	case err := <-done:
		t.Fatalf("a write to a full pool returned at once: %v", err)
	default:
	}
	d.mustCLI("volume", "delete", "filler")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the queued write: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the queued write did not complete after the delete freed space")
	}
	got := make([]byte, len(buf))
	if err := c.pread(got, 0); err != nil || !bytes.Equal(got, buf) {
		t.Fatalf("read back the queued write: %v", err)
	}
	if m := poolMode(t, d); m != "write" {
		t.Errorf("mode %s after the delete freed space", m)
	}
}

// `thind pool resize --data-size` on a full pool lets a queued write
// complete, and `thind pool status` counts the new size at once.
func TestPoolResizeResumesAQueuedWrite(t *testing.T) {
	d := fullPool(t)
	c, buf, done := queueWrite(t, d, 0x43)
	out := d.mustCLI("pool", "resize", "--data-size", "128M", "--metadata-size", "512M")
	if !strings.Contains(out, "/2048 blocks used") || !strings.Contains(out, "/131072 blocks used") {
		t.Errorf("pool resize printed:\n%s", out)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the queued write: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the queued write did not complete after the pool grew")
	}
	got := make([]byte, len(buf))
	if err := c.pread(got, 0); err != nil || !bytes.Equal(got, buf) {
		t.Fatalf("read back the queued write: %v", err)
	}
	status := d.mustCLI("pool", "status")
	if !strings.Contains(status, "mode:           write") || !strings.Contains(status, "/2048 blocks used") {
		t.Errorf("pool status after the grow:\n%s", status)
	}
	if _, errOut, code := d.cli("pool", "resize", "--data-size", "64M"); code == 0 || !strings.Contains(errOut, "cannot shrink") {
		t.Errorf("shrinking the pool: exit %d: %s", code, errOut)
	}
	if _, errOut, code := d.cli("pool", "set-mode", "read-only"); code == 0 || !strings.Contains(errOut, "only \"write\"") {
		t.Errorf("set-mode read-only: exit %d: %s", code, errOut)
	}
	if out := d.mustCLI("pool", "set-mode", "write", "--check"); !strings.Contains(out, "mode: write") {
		t.Errorf("set-mode write on a pool in write mode: %s", out)
	}
}

// queueWrite starts a 64 KiB FUA write of fill to volume default of the
// full pool d and returns once the pool says it is out of data space,
// with the write's connection, its data and where its answer will come.
func queueWrite(t *testing.T, d *daemon, fill byte) (*nbdClient, []byte, chan error) {
	t.Helper()
	c := d.dial(t, "default")
	buf := bytes.Repeat([]byte{fill}, 64<<10)
	done := make(chan error, 1)
	go func() { done <- c.pwrite(buf, 0, nbdFlagFUA) }()
	waitFor(t, "the pool to be out of space", 30*time.Second, func() error {
		if m := poolMode(t, d); m != "out-of-data-space" {
			return fmt.Errorf("mode %s", m)
		}
		return nil
	})
	return c, buf, done
}
