package metatools

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/thind-storage/thind/internal/fixture"
)

var fixtureLsFields = strings.Split("DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,MAPPED_BYTES,EXCLUSIVE_BYTES,SHARED_BYTES,TRANSACTION,CREATE_TIME,SNAP_TIME", ",")

func TestLsMatchesThinLs(t *testing.T) {
	for _, prefix := range []string{"kernel-", "restored-"} {
		for _, name := range fixture.Names(t, prefix) {
			t.Run(name, func(t *testing.T) {
				want, err := os.ReadFile(fixtureDir + name + ".ls")
				if err != nil {
					t.Fatal(err)
				}
				rows, err := Ls(openFixture(t, name), LsOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var got bytes.Buffer
				if err := WriteLsTable(&got, rows, fixtureLsFields, true); err != nil {
					t.Fatal(err)
				}
				if got.String() != string(want) {
					t.Fatalf("got\n%s\nthin_ls:\n%s", got.String(), want)
				}
			})
		}
	}
	want, _ := os.ReadFile(fixtureDir + "kernel-metasnap.snap.ls")
	rows, err := Ls(openFixture(t, "kernel-metasnap"), LsOptions{MetadataSnap: true})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	WriteLsTable(&got, rows, fixtureLsFields, true)
	if got.String() != string(want) {
		t.Fatalf("ls -m: got\n%s\nthin_ls -m:\n%s", got.String(), want)
	}
}

func TestFormatDiskUnitLikeThinLs(t *testing.T) {
	for bytes, want := range map[uint64]string{
		0: "0", 65536: "64KiB", 2490368: "2432KiB", 4194304: "4096KiB", 23068672: "22MiB",
		1073741824: "1024MiB", 3221225472: "3072MiB", 6553600000: "6250MiB", 1 << 40: "1024GiB",
	} {
		if got := FormatDiskUnit(bytes); got != want {
			t.Errorf("%d bytes: %s, thin_ls says %s", bytes, got, want)
		}
	}
}
