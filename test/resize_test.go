package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/tooltest"
)

// Shrinking drops the data past the new end (a partial last block is
// zeroed past it), so growing again reads zeros there; growing a
// connected volume is seen by new connections.
func TestResizeShrinksAndGrowsAVolume(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "rs", "--size", "4M")
	uri := d.unixURI("rs")
	qemuIO(t, uri, "write -P 0x11 0 4M", "flush")
	d.mustCLI("volume", "snapshot", "rs", "rs-before")

	start := time.Now()
	d.mustCLI("volume", "resize", "rs", "--size", "1536", "--allow-shrink")
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("shrinking took %v", took)
	}
	if v := d.volume("rs"); v.Size != 1536 || v.MappedBytes != blockSize {
		t.Errorf("after shrinking to 1536 bytes: size %d, %d bytes mapped", v.Size, v.MappedBytes)
	}
	d.mustCLI("volume", "resize", "rs", "--size", "8M")
	if got := strings.TrimSpace(tooltest.Run(t, "nbdinfo", pkgLibnbd, "--size", uri)); got != fmt.Sprint(8<<20) {
		t.Errorf("nbdinfo --size after growing: %s", got)
	}
	qemuIO(t, uri, "read -P 0x11 0 1536", "read -P 0 1536 63k", "read -P 0 64k 8128k")
	want := provisioned{}
	want.touch(0, 1)
	if got := nbdinfoMap(t, uri); fmt.Sprint(got) != fmt.Sprint(want.extents(8<<20)) {
		t.Errorf("nbdinfo --map after shrink and grow: %v", got)
	}
	// The snapshot taken before still has everything.
	tooltest.Run(t, "qemu-io", pkgQemu, "-f", "raw", "-c", "read -P 0x11 0 4M", d.unixURI("rs-before"))

	// Growing a connected volume: the connection keeps its size, a new
	// one sees the new size and can write at its end.
	c := d.dial(t, "rs")
	d.mustCLI("volume", "resize", "rs", "--size", "16M")
	if c.size != 8<<20 {
		t.Errorf("the connection's size %d", c.size)
	}
	qemuIO(t, uri, "write -P 0x22 16320k 64k", "read -P 0x22 16320k 64k")
}

// qemuIO runs qemu-io commands against a raw NBD export and fails the test
// if any of them reports a failure (qemu-io exits 0 even then).
func qemuIO(t *testing.T, uri string, cmds ...string) string {
	t.Helper()
	args := []string{"-f", "raw"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out := tooltest.Run(t, "qemu-io", pkgQemu, append(args, uri)...)
	if strings.Contains(out, "failed") {
		t.Fatalf("qemu-io %v:\n%s", cmds, out)
	}
	return out
}
