package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
)

// TestStagingVolumeIsTheReceivesOwn interrupts an incremental receive
// and checks that its staging volume is no volume: not listed (but with
// --all), not in NBD LIST, refused on GO, not a dirty bitmap of its
// base's lineage, not a snapshot origin, send or diff volume, not
// resized, updated or deleted by name; `receive --abort` removes it, and
// the stream then applies whole.
func TestStagingVolumeIsTheReceivesOwn(t *testing.T) {
	randtest.Each(t, 1, func(t *testing.T, seed uint64) {
		rng := randtest.FromSeed(seed)
		d := startDaemon(t)
		const size = 16 << 20
		d.mustCLI("volume", "create", "vm", "--size", "16M")
		m := &blockModel{vols: map[string]map[int64]int{"vm": {}}}
		m.workload(t, d, rng, "vm", size, 60)
		d.mustCLI("volume", "snapshot", "vm", "s0")
		m.workload(t, d, rng, "vm", size, 60)
		d.mustCLI("volume", "snapshot", "vm", "s1")
		dir := t.TempDir()
		full, incr := filepath.Join(dir, "s0.stream"), filepath.Join(dir, "s1.stream")
		d.mustCLI("volume", "send", "s0", "-o", full)
		d.mustCLI("volume", "send", "s1", "--from", "s0", "-o", incr)
		d.mustCLI("volume", "receive", "r0", "-i", full)
		good, err := os.ReadFile(incr)
		if err != nil {
			t.Fatal(err)
		}
		cut := filepath.Join(dir, "cut.stream")
		if err := os.WriteFile(cut, good[:len(good)-10], 0o600); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code := d.cli("volume", "receive", "r1", "-i", cut); code == 0 || !strings.Contains(errOut, "truncated") {
			t.Fatalf("receive of a truncated stream: exit %d, %q", code, errOut)
		}
		const st = "r1.receiving"

		// Listed only with --all.
		if hasVolume(d, st) {
			t.Errorf("volume list shows %s", st)
		}
		if out := d.mustCLI("volume", "list", "--all"); !strings.Contains(out, st) {
			t.Errorf("volume list --all lacks %s:\n%s", st, out)
		}
		// NBD: not listed, refused on GO, not a dirty bitmap of r0.
		out, _ := nbdinfoAs(t, false, "--list", d.unixURI(""))
		if names := exportsListed(out); has(names, st) || !has(names, "r0") {
			t.Errorf("NBD LIST: %v, want r0 and no %s", names, st)
		}
		if out, code := nbdinfoAs(t, false, d.unixURI(st)); code == 0 || !strings.Contains(out, "server replied with error to opt_go") {
			t.Errorf("nbdinfo %s: exit %d, want NBD_OPT_GO refused (as for an unknown export):\n%s", st, code, out)
		}
		if out, code := nbdinfoAs(t, false, d.unixURI("r0")); code != 0 || !strings.Contains(out, "base:allocation") || strings.Contains(out, "qemu:dirty-bitmap:"+st) {
			t.Errorf("nbdinfo r0: exit %d, offers %s's dirty bitmap (or failed):\n%s", code, st, out)
		}
		// Not a volume to the volume commands.
		for _, args := range [][]string{
			{"volume", "snapshot", st, "x"},
			{"volume", "send", st},
			{"volume", "send", "s1", "--from", st},
			{"volume", "diff", "r0", st},
			{"volume", "diff", st, "r0"},
			{"volume", "resize", st, "--size", "32M"},
			{"volume", "update", st, "--description", "mine"},
			{"volume", "delete", st},
		} {
			out, errOut, code := d.cli(args...)
			if code == 0 || !strings.Contains(errOut, "staging volume") || !strings.Contains(errOut, "receive r1 --abort") {
				t.Errorf("thind %s: exit %d, %q, %d bytes out; want a refusal naming the staging volume and --abort",
					strings.Join(args, " "), code, errOut, len(out))
			}
		}
		if hasVolume(d, "x") {
			t.Error("a snapshot of the staging volume was made")
		}
		// --abort removes it, once.
		d.mustCLI("volume", "receive", "r1", "--abort")
		if out := d.mustCLI("volume", "list", "--all"); strings.Contains(out, st) {
			t.Errorf("after --abort, volume list --all still has %s:\n%s", st, out)
		}
		if _, errOut, code := d.cli("volume", "receive", "r1", "--abort"); code == 0 || !strings.Contains(errOut, "no interrupted receive into r1") {
			t.Errorf("a second --abort: exit %d, %q", code, errOut)
		}
		if _, errOut, code := d.cli("volume", "receive", "r0", "--abort"); code == 0 || !hasVolume(d, "r0") {
			t.Errorf("--abort on a received volume: exit %d, %q; r0 must stay", code, errOut)
		}
		// The stream applies whole after the abort.
		d.mustCLI("volume", "receive", "r1", "-i", incr)
		if got, want := volumeSum(t, d, "r1"), volumeSum(t, d, "s1"); got != want {
			t.Fatalf("r1 sha256 %x, s1 %x", got, want)
		}
	})
}
