package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thind-storage/thind/internal/tooltest"
)

// TestTrimShrinksTheDataFileBeforeItIsAnswered: a libnbd client stats the
// pool's data file the moment a TRIM, and then an unmapping WRITE_ZEROES,
// is answered: it has shrunk already (the kernel VM suite's fstrim
// checks depend on it). Neither is followed by a flush, yet after kill -9
// and a restart both ranges read as zeroes, and the rest as written.
func TestTrimShrinksTheDataFileBeforeItIsAnswered(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "trim", "--size", "64M")
	data := filepath.Join(d.dir, "data")
	out := tooltest.RunPython(t, `
import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
used = lambda: os.stat(sys.argv[2]).st_blocks * 512
h.pwrite(b"\x5a" * (12 << 20), 0)
h.flush()
a = used()
h.trim(4 << 20, 0)  # count, offset: [0, 4M)
b = used()
h.zero(4 << 20, 4 << 20)  # [4M, 8M), holes allowed
c = used()
print(a, b, c)
`, d.unixURI("trim"), data)
	var before, trimmed, zeroed int64
	if _, err := fmt.Sscan(out, &before, &trimmed, &zeroed); err != nil {
		t.Fatalf("script output %q: %v", out, err)
	}
	if before < 12<<20 {
		t.Fatalf("data file holds %d bytes after 12 MiB were written and flushed", before)
	}
	if trimmed > before-4<<20 {
		t.Errorf("TRIM of 4 MiB answered with the data file at %d bytes, %d before", trimmed, before)
	}
	if zeroed > trimmed-4<<20 {
		t.Errorf("unmapping WRITE_ZEROES of 4 MiB answered with the data file at %d bytes, %d before", zeroed, trimmed)
	}
	d.kill()
	checkStoppedPool(t, d)
	d.start()
	cmds := []string{"read -P 0 0 8M", "read -P 0x5a 8M 4M"}
	args := []string{"-f", "raw"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	got := tooltest.Run(t, "qemu-io", pkgQemu, append(args, d.unixURI("trim"))...)
	if strings.Contains(got, "failed") || strings.Count(got, "read ") != len(cmds) {
		t.Errorf("after kill -9:\n%s", got)
	}
}
