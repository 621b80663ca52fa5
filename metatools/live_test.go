package metatools

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/devlock"
	"github.com/thind-storage/thind/internal/fixture"
	"github.com/thind-storage/thind/thinmeta"
)

// A pool in use (here: an exclusive lock, as a running thind holds) is
// read only through its held metadata snapshot, and the refusal names the
// holder.
func TestAPoolInUseIsReadOnlyThroughItsMetadataSnapshot(t *testing.T) {
	path := fixture.UnpackMeta(t, "kernel-metasnap")
	held, err := devlock.Exclusive(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	_, err = OpenImage(path)
	if !errors.Is(err, ErrLive) || !errors.Is(err, devlock.ErrHeld) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("OpenImage of a pool in use: %v", err)
	}
	img, err := OpenLiveImage(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	var got bytes.Buffer
	if err := Dump(img, &got, DumpOptions{}); !errors.Is(err, ErrLive) {
		t.Errorf("Dump of the live metadata: %v, want ErrLive", err)
	}
	if _, err := Ls(img, LsOptions{}); !errors.Is(err, ErrLive) {
		t.Errorf("Ls of the live metadata: %v, want ErrLive", err)
	}
	if err := Dump(img, &got, DumpOptions{MetadataSnap: true}); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(fixtureDir + "kernel-metasnap.snap.xml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Error("dump -m of a pool in use differs from thin_dump -m")
	}
	if _, err := Ls(img, LsOptions{MetadataSnap: true}); err != nil {
		t.Errorf("ls -m of a pool in use: %v", err)
	}
	// A reader keeps a writer out while it reads.
	img2, err := OpenLiveImage(path)
	if err != nil {
		t.Fatal(err)
	}
	img2.Close()
	held.Close()
	img3, err := OpenImage(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img3.Close()
	if _, err := devlock.Exclusive(path); !errors.Is(err, devlock.ErrHeld) {
		t.Errorf("a writer took the metadata while a tool read it: %v", err)
	}
}

// thind's repair keeps the pool's identity, so the repaired metadata is
// still its catalog's (thin_repair writes a zero uuid).
func TestRepairKeepsThePoolsIdentity(t *testing.T) {
	src := bm.NewMemDevice(16 << 20)
	p, err := thinmeta.Create(src, src.NrBlocks(), 128, 1024, thinmeta.Options{}) //pooltest:metatools' own tests cannot import pooltest (it imports metatools)
	if err != nil {
		t.Fatal(err)
	}
	id := [16]byte{0xaa, 15: 0x55}
	if err := p.SetUUID(id); err != nil {
		t.Fatal(err)
	}
	p.Close()
	img, err := NewImage(src, src.NrBlocks())
	if err != nil {
		t.Fatal(err)
	}
	dst := bm.NewMemDevice(16 << 20)
	if _, err := Repair(img, dst, dst.NrBlocks(), RepairOptions{}); err != nil {
		t.Fatal(err)
	}
	sb, err := thinmeta.ReadSuperblock(dst)
	if err != nil {
		t.Fatal(err)
	}
	if sb.UUID != id {
		t.Errorf("repaired uuid %x, want %x", sb.UUID, id)
	}
}
