package blk

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestFileHolesAreWhatWasNeverWrittenOrWasPunched writes and punches
// 64 KiB pieces of a sparse file and expects Holes to report exactly the
// rest, merged, clipped to the asked range.
func TestFileHolesAreWhatWasNeverWrittenOrWasPunched(t *testing.T) {
	const piece = 64 << 10
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 32*piece); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, piece)
	buf[0] = 1
	for _, p := range []int64{2, 3, 4, 10, 20, 31} {
		if _, err := f.WriteAt(buf, p*piece); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Discard(3*piece, piece); err != nil {
		t.Fatal(err)
	}
	holes := func(off, length int64) [][2]int64 {
		var got [][2]int64
		if err := f.Holes(off, length, func(o, n int64) error {
			got = append(got, [2]int64{o / piece, (o + n) / piece})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	check := func(got, want [][2]int64) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("holes %v, want %v", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("holes %v, want %v", got, want)
			}
		}
	}
	check(holes(0, 32*piece), [][2]int64{{0, 2}, {3, 4}, {5, 10}, {11, 20}, {21, 31}})
	check(holes(4*piece, 10*piece), [][2]int64{{5, 10}, {11, 14}})
	check(holes(31*piece, 10*piece), nil)
	stop := errors.New("stop")
	if err := f.Holes(0, 32*piece, func(int64, int64) error { return stop }); err != stop {
		t.Fatalf("an error from fn came back as %v", err)
	}
}
