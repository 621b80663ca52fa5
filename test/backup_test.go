package test

import (
	"crypto/sha256"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/tooltest"
)

// volumeSum is the sha256 of a volume's whole content, read by nbdcopy.
func volumeSum(t *testing.T, d *daemon, vol string) [32]byte {
	t.Helper()
	out, err := exec.Command(tooltest.Need(t, "nbdcopy", pkgLibnbd), d.unixURI(vol), "-").Output()
	if err != nil {
		t.Fatalf("nbdcopy %s -: %v", vol, err)
	}
	return sha256.Sum256(out)
}

// backupScript runs README's docs/thind-backup.py and returns the byte
// count it printed ("read N bytes" or "wrote N bytes").
func backupScript(t *testing.T, args ...string) int64 {
	t.Helper()
	cmd := exec.Command(tooltest.LibnbdPython(t), append([]string{filepath.Join(repoRoot, "docs", "thind-backup.py")}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("thind-backup.py %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 || f[2] != "bytes" {
		t.Fatalf("thind-backup.py %s printed %q", strings.Join(args, " "), out)
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFullAndIncrementalBackupsRestore is README's backup recipe: a full
// backup of snapshot s0's allocated extents, then three incrementals of
// the extents dirty in s1, s2, s3 against the snapshot before, restored
// in order to a fresh volume, which must read as each snapshot after each
// step. Each backup reads at most 1.05x the bytes that changed: the
// allocated bytes for the full one, the changed ranges of thind volume
// diff for an incremental (unmapped ranges are written as zeroes, never
// read).
func TestFullAndIncrementalBackupsRestore(t *testing.T) {
	randtest.Each(t, 1, func(t *testing.T, seed uint64) {
		rng := randtest.FromSeed(seed)
		d := startDaemon(t, "--data-size", "256M", "--metadata-size", "16M")
		const size = 32 << 20
		d.mustCLI("volume", "create", "vm", "--size", "32M")
		d.mustCLI("volume", "create", "restored", "--size", "32M")
		m := &blockModel{vols: map[string]map[int64]int{"vm": {}}}
		dir := t.TempDir()
		var files []string
		for i := range 4 {
			m.workload(t, d, rng, "vm", size, 60)
			snap := fmt.Sprintf("s%d", i)
			d.mustCLI("volume", "snapshot", "vm", snap)
			m.snapshot("vm", snap)
			file := filepath.Join(dir, snap+".bak")
			var read, changed int64
			if i == 0 {
				read = backupScript(t, "full", d.unixURI(snap), file)
				changed = int64(len(m.vols[snap])) * blockSize
			} else {
				base := fmt.Sprintf("s%d", i-1)
				read = backupScript(t, "incr", base, d.unixURI(snap), file)
				ranges, _ := volumeDiff(t, d, base, snap, 0)
				for _, r := range ranges {
					if r.State == control.DiffChanged {
						changed += int64(r.Length)
					}
				}
			}
			if changed == 0 || float64(read) > 1.05*float64(changed) {
				t.Fatalf("backup of %s read %d bytes for %d changed", snap, read, changed)
			}
			t.Logf("%s: read %d bytes, %d changed", snap, read, changed)
			files = append(files, file)
			backupScript(t, append([]string{"restore", d.unixURI("restored")}, file)...)
			if got, want := volumeSum(t, d, "restored"), volumeSum(t, d, snap); got != want {
				t.Fatalf("restored after %s: sha256 %x, the snapshot's %x", file, got, want)
			}
		}
		// The whole chain at once onto another fresh volume.
		d.mustCLI("volume", "create", "chain", "--size", "32M")
		backupScript(t, append([]string{"restore", d.unixURI("chain")}, files...)...)
		if got, want := volumeSum(t, d, "chain"), volumeSum(t, d, "s3"); got != want {
			t.Fatalf("chain restored: sha256 %x, s3's %x", got, want)
		}
		d.stop()
		pooltest.CheckNow(t, filepath.Join(d.dir, "metadata"))
	})
}
