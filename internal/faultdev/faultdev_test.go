package faultdev_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/thind-storage/thind/internal/faultdev"
)

func tempFile(t *testing.T, size int64) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "dev"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func fill(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// TestCutKeepsWhatWasSynced writes over a file, syncs, writes again, and
// cuts: the file must hold exactly the synced bytes, and every operation
// after the cut must fail.
func TestCutKeepsWhatWasSynced(t *testing.T) {
	f := tempFile(t, 1<<16)
	d := faultdev.New(f, 1)
	mustWrite := func(p []byte, off int64) {
		t.Helper()
		if _, err := d.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(fill(1, 8192), 0)
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	mustWrite(fill(2, 4096), 4096)  // over synced data
	mustWrite(fill(3, 4096), 16384) // over a hole
	mustWrite(fill(4, 100), 4100)   // twice over the same place
	if got := d.Unflushed(); got != 8292 {
		t.Fatalf("%d bytes unflushed, want 8292", got)
	}
	if err := d.Cut(0); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 1<<16)
	copy(want, fill(1, 8192))
	got := make([]byte, 1<<16)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the file does not hold what was synced before the cut")
	}
	for name, err := range map[string]error{
		"read":  func() error { _, err := d.ReadAt(got[:1], 0); return err }(),
		"write": func() error { _, err := d.WriteAt(got[:1], 0); return err }(),
		"sync":  d.Sync(),
	} {
		if !errors.Is(err, faultdev.ErrPowerCut) {
			t.Errorf("%s after the cut: %v, want ErrPowerCut", name, err)
		}
	}
	d.PowerOn()
	if _, err := d.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read after the power came back: %v", err)
	}
}

// TestCutMayKeepUnsyncedWrites keeps every unsynced write with keep 1.
func TestCutMayKeepUnsyncedWrites(t *testing.T) {
	f := tempFile(t, 8192)
	d := faultdev.New(f, 1)
	d.WriteAt(fill(5, 4096), 0)
	if err := d.Cut(1); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	f.ReadAt(got, 0)
	if !bytes.Equal(got, fill(5, 4096)) {
		t.Fatal("a kept write was lost")
	}
}

// TestRulesPickOperations checks each selector of a rule.
func TestRulesPickOperations(t *testing.T) {
	buf := make([]byte, 512)
	tests := []struct {
		name string
		rule faultdev.Rule
		op   func(d *faultdev.Device, off int64) error
		offs []int64
		fail []bool
	}{
		{"an operation kind is matched alone", faultdev.Rule{Ops: faultdev.OpWrite},
			func(d *faultdev.Device, off int64) error { _, err := d.ReadAt(buf, off); return err },
			[]int64{0, 4096}, []bool{false, false}},
		{"a range matches what overlaps it", faultdev.Rule{Ops: faultdev.OpRead, Off: 4096, Len: 4096},
			func(d *faultdev.Device, off int64) error { _, err := d.ReadAt(buf, off); return err },
			[]int64{0, 3700, 4096, 8191, 8192}, []bool{false, true, true, true, false}},
		{"after lets operations through, count ends the rule", faultdev.Rule{Ops: faultdev.OpWrite, After: 2, Count: 2},
			func(d *faultdev.Device, off int64) error { _, err := d.WriteAt(buf, off); return err },
			[]int64{0, 0, 0, 0, 0, 0}, []bool{false, false, true, true, false, false}},
		{"a flush ignores the range", faultdev.Rule{Ops: faultdev.OpFlush, Off: 4096, Len: 1},
			func(d *faultdev.Device, off int64) error { return d.Sync() },
			[]int64{0}, []bool{true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := faultdev.New(tempFile(t, 1<<16), 1)
			d.Inject(tc.rule)
			failed := 0
			for i, off := range tc.offs {
				err := tc.op(d, off)
				var fe *faultdev.Error
				if got := errors.As(err, &fe); got != tc.fail[i] {
					t.Fatalf("operation %d at %d: error %v, want failure %v", i, off, err, tc.fail[i])
				}
				if err != nil {
					failed++
					if !errors.Is(err, syscall.EIO) {
						t.Fatalf("%v does not wrap EIO", err)
					}
				}
			}
			if got := d.Injected(faultdev.OpAll); got != failed {
				t.Fatalf("Injected %d, want %d", got, failed)
			}
		})
	}
}

// TestProbabilityReplaysFromTheSeed fails about the share asked for, and
// the same operations under the same seed.
func TestProbabilityReplaysFromTheSeed(t *testing.T) {
	run := func(seed uint64) []bool {
		d := faultdev.New(tempFile(t, 4096), seed)
		d.Inject(faultdev.Rule{Ops: faultdev.OpRead, Prob: 0.25})
		out := make([]bool, 2000)
		buf := make([]byte, 1)
		for i := range out {
			_, err := d.ReadAt(buf, 0)
			out[i] = err != nil
		}
		return out
	}
	a, b := run(7), run(7)
	n := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("operation %d differs under the same seed", i)
		}
		if a[i] {
			n++
		}
	}
	if n < 400 || n > 600 {
		t.Fatalf("%d of 2000 failed with probability 0.25", n)
	}
}

// TestFailedWriteChangesNothing: an injected write failure leaves the
// bytes as they were, and removing the rule (the fault fixed) lets the
// write through.
func TestFailedWriteChangesNothing(t *testing.T) {
	f := tempFile(t, 4096)
	d := faultdev.New(f, 1)
	remove := d.Inject(faultdev.Rule{Ops: faultdev.OpWrite})
	if _, err := d.WriteAt(fill(9, 10), 0); err == nil {
		t.Fatal("write succeeded")
	}
	got := make([]byte, 10)
	f.ReadAt(got, 0)
	if !bytes.Equal(got, make([]byte, 10)) {
		t.Fatal("a failed write changed the file")
	}
	remove()
	if _, err := d.WriteAt(fill(9, 10), 0); err != nil {
		t.Fatal(err)
	}
}
