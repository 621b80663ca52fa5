package metatools

import (
	"bytes"
	"fmt"
	"os"
	"testing"
)

// TestRestoreGeneratedPools restores pools of a million mappings and more
// over ten devices, snapshots of snapshots sharing blocks (reference
// counts up to ten), at the smallest, a middling and the largest data
// block size, and holds the result to the real thin_check (no errors, no
// warnings) and thin_dump (the same XML back).
func TestRestoreGeneratedPools(t *testing.T) {
	mappings := 150_000
	if testing.Short() {
		mappings = 20_000
	}
	for _, bs := range []uint32{128, 16384, 2097152} {
		t.Run(fmt.Sprintf("block_sectors=%d", bs), func(t *testing.T) {
			var xml bytes.Buffer
			err := Generate(&xml, GenerateOptions{Seed: uint64(bs), Devices: 10, Mappings: mappings, DataBlockSize: bs, Rewrite: 0.05})
			if err != nil {
				t.Fatal(err)
			}
			path := restoreFile(t, xml.Bytes(), 96<<20)
			out := thinCheck(t, path)
			if got := thinDump(t, path); !bytes.Equal(got, xml.Bytes()) {
				os.WriteFile(t.TempDir()+"/got.xml", got, 0o644)
				t.Fatalf("thin_dump of the restored pool differs from the input (%d vs %d bytes)", len(got), xml.Len())
			}
			img, err := OpenImage(path)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			r := Check(img, CheckOptions{})
			if !r.OK() || r.Warnings != 0 {
				var b bytes.Buffer
				r.WriteText(&b)
				t.Fatalf("thind check:\n%s", b.String())
			}
			if r.Mappings < 1_000_000 && !testing.Short() {
				t.Fatalf("only %d mappings generated", r.Mappings)
			}
			t.Logf("%d mappings, %d devices, data %d/%d blocks; thin_check: %s", r.Mappings, r.Devices, r.DataBlocksUsed, r.DataBlocks, out)
		})
	}
}
