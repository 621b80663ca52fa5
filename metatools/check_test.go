package metatools

import (
	"strings"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/fixture"
)

var fixtureDir = fixture.Dir() + "/"

func openFixture(t testing.TB, name string) *Image {
	t.Helper()
	img, err := OpenImage(fixture.UnpackMeta(t, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

var _ = bm.BlockSize

func TestCheckPassesEveryGoodImage(t *testing.T) {
	for _, prefix := range []string{"kernel-", "restored-"} {
		for _, name := range fixture.Names(t, prefix) {
			t.Run(name, func(t *testing.T) {
				r := Check(openFixture(t, name), CheckOptions{})
				var sb strings.Builder
				r.WriteText(&sb)
				if !r.OK() {
					t.Fatalf("check failed:\n%s", sb.String())
				}
				t.Log(sb.String())
			})
		}
	}
}

// The fault each corrupt image carries, as the checker must name it.
var corruptFaults = map[string]struct {
	block uint64
	fault string
}{
	"corrupt-node-checksum":         {10, "bad checksum"},
	"corrupt-keys-order":            {10, "keys are out of order"},
	"corrupt-bitmap-count":          {0, "data block 10: reference count 0, but the mapping trees reference it 1 times"},
	"corrupt-metadata-bitmap-count": {10, "expected 1, but got 0"},
	"corrupt-sb-magic":              {0, "bad magic 27022011"},
	"corrupt-mapping-beyond":        {10, "maps to data block 2005, beyond the data device"},
	"corrupt-sb-checksum":           {0, "bad checksum: computed 1977018112, stored 1977018113"},
}

func TestCheckFailsEveryCorruptImageNamingTheFault(t *testing.T) {
	for _, name := range fixture.Names(t, "corrupt-") {
		t.Run(name, func(t *testing.T) {
			want, ok := corruptFaults[name]
			if !ok {
				t.Fatalf("no expectation for fixture %s", name)
			}
			r := Check(openFixture(t, name), CheckOptions{})
			var sb strings.Builder
			r.WriteText(&sb)
			if r.OK() {
				t.Fatalf("check passed a corrupt image:\n%s", sb.String())
			}
			found := false
			for _, f := range r.Faults {
				if f.Severity == SeverityError && strings.Contains(f.Fault, want.fault) && (!f.HasBlock || f.Block == want.block) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no error naming block %d and %q:\n%s", want.block, want.fault, sb.String())
			}
			t.Log(sb.String())
		})
	}
}
