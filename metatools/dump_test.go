package metatools

import (
	"bytes"
	"os"
	"testing"

	"github.com/thind-storage/thind/internal/fixture"
)

// TestDumpMatchesThinDump compares thind's dump of every fixture with
// thin_dump 0.9.0's output recorded beside it, byte for byte, including
// the partial output thin_dump leaves on damaged images.
func TestDumpMatchesThinDump(t *testing.T) {
	for _, name := range fixture.Names(t, "") {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(fixtureDir + name + ".xml")
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			err = Dump(openFixture(t, name), &got, DumpOptions{})
			failed := name == "corrupt-node-checksum" || name == "corrupt-keys-order" || name == "corrupt-sb-checksum"
			if failed != (err != nil) {
				t.Fatalf("dump error %v; thin_dump failed: %v", err, failed)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("dump differs from thin_dump (%d vs %d bytes)", got.Len(), len(want))
			}
		})
	}
}

func TestDumpMetadataSnapMatchesThinDump(t *testing.T) {
	want, err := os.ReadFile(fixtureDir + "kernel-metasnap.snap.xml")
	if err != nil {
		t.Fatal(err)
	}
	img := openFixture(t, "kernel-metasnap")
	var got bytes.Buffer
	if err := Dump(img, &got, DumpOptions{MetadataSnap: true}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("dump -m differs:\n%s", got.String())
	}
	if err := Dump(img, &got, DumpOptions{MetadataSnap: true, SnapBlock: 24}); err == nil {
		t.Fatal("a wrong snapshot block was accepted")
	}
	if err := Dump(openFixture(t, "kernel-small"), &got, DumpOptions{MetadataSnap: true}); err != ErrNoMetadataSnap {
		t.Fatalf("got %v", err)
	}
}
