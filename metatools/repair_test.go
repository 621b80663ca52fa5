package metatools

import (
	"bytes"
	"strings"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/fixture"
)

// TestRepairMakesEveryCorruptImageValid repairs each corrupt fixture and
// holds the result to both checkers.
func TestRepairMakesEveryCorruptImageValid(t *testing.T) {
	for _, name := range fixture.Names(t, "corrupt-") {
		t.Run(name, func(t *testing.T) {
			in := openFixture(t, name)
			path := emptyFile(t, 4<<20)
			f, n, err := bm.OpenFile(path, false)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Repair(in, f, n, RepairOptions{})
			f.Close()
			if err != nil {
				t.Fatalf("repair: %v", err)
			}
			t.Logf("kept %d devices, %d mappings; losses %q; notes %q", rep.Devices, rep.Mappings, rep.Losses, rep.Notes)
			thinCheck(t, path)
			img, err := OpenImage(path)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			r := Check(img, CheckOptions{})
			if !r.OK() {
				var b bytes.Buffer
				r.WriteText(&b)
				t.Fatalf("thind check of the repaired image:\n%s", b.String())
			}
			want := map[string]uint64{
				"corrupt-node-checksum":  64,  // dev 0's only leaf is lost
				"corrupt-mapping-beyond": 130, // one mapping dropped
			}[name]
			if want == 0 {
				want = 131 // everything salvaged
			}
			if rep.Mappings != want {
				t.Fatalf("salvaged %d mappings, want %d", rep.Mappings, want)
			}
			if name == "corrupt-node-checksum" && !strings.Contains(strings.Join(rep.Losses, "\n"), "block 10") {
				t.Fatalf("the loss of block 10 is not reported: %q", rep.Losses)
			}
		})
	}
}
