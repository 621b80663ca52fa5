package metatools

import (
	"bytes"
	"os"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/fixture"
)

func restoreFile(t testing.TB, xml []byte, size int64) string {
	t.Helper()
	path := emptyFile(t, size)
	f, n, err := bm.OpenFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Restore(bytes.NewReader(xml), f, n); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return path
}

// TestRestoreRoundTripsEveryFixture restores each fixture's thin_dump XML
// and checks the result with the real thin_check and thin_dump, and with
// thind's own checker and dumper.
func TestRestoreRoundTripsEveryFixture(t *testing.T) {
	for _, prefix := range []string{"kernel-", "restored-"} {
		for _, name := range fixture.Names(t, prefix) {
			t.Run(name, func(t *testing.T) {
				xml, err := os.ReadFile(fixtureDir + name + ".xml")
				if err != nil {
					t.Fatal(err)
				}
				path := restoreFile(t, xml, 8<<20)
				thinCheck(t, path)
				if got := thinDump(t, path); !bytes.Equal(got, xml) {
					t.Fatalf("thin_dump of the restored image differs from the input")
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
				var got bytes.Buffer
				if err := Dump(img, &got, DumpOptions{}); err != nil || !bytes.Equal(got.Bytes(), xml) {
					t.Fatalf("thind dump differs (%v)", err)
				}
			})
		}
	}
}

func TestRestoreRefusesBadInput(t *testing.T) {
	for name, doc := range map[string]string{
		"data block beyond the device": `<superblock uuid="" time="0" transaction="1" data_block_size="128" nr_data_blocks="10">
  <device dev_id="0" mapped_blocks="1" transaction="0" creation_time="0" snap_time="0">
    <single_mapping origin_block="0" data_block="10" time="0"/>
  </device>
</superblock>`,
		"odd block size": `<superblock uuid="" time="0" transaction="1" data_block_size="100" nr_data_blocks="10">
</superblock>`,
		"duplicate device": `<superblock uuid="" time="0" transaction="1" data_block_size="128" nr_data_blocks="10">
  <device dev_id="3" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">
  </device>
  <device dev_id="3" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">
  </device>
</superblock>`,
		"mapping time in the future": `<superblock uuid="" time="1" transaction="1" data_block_size="128" nr_data_blocks="10">
  <device dev_id="0" mapped_blocks="1" transaction="0" creation_time="0" snap_time="0">
    <single_mapping origin_block="0" data_block="1" time="2"/>
  </device>
</superblock>`,
		"block mapped twice": `<superblock uuid="" time="0" transaction="1" data_block_size="128" nr_data_blocks="10">
  <device dev_id="0" mapped_blocks="2" transaction="0" creation_time="0" snap_time="0">
    <single_mapping origin_block="5" data_block="1" time="0"/>
    <single_mapping origin_block="5" data_block="2" time="0"/>
  </device>
</superblock>`,
	} {
		t.Run(name, func(t *testing.T) {
			path := emptyFile(t, 4<<20)
			f, n, _ := bm.OpenFile(path, false)
			defer f.Close()
			if _, err := Restore(bytes.NewReader([]byte(doc)), f, n); err == nil {
				t.Fatal("restore accepted it")
			} else {
				t.Log(err)
			}
		})
	}
}

// TestRestoreSharedMappings restores kernel-small written the way
// thin_dump of thin-provisioning-tools 1.x writes shared subtrees, as
// <def> and <ref>: thin_check must pass and thin_dump 0.9.0 must print
// the fixture's own (0.9.0) dump.
func TestRestoreSharedMappings(t *testing.T) {
	want, err := os.ReadFile(fixtureDir + "kernel-small.xml")
	if err != nil {
		t.Fatal(err)
	}
	shared := `<superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="2048">
  <def name="1600">
    <single_mapping origin_block="1600" data_block="20" time="0"/>
  </def>
  <def name="tail">
    <range_mapping origin_begin="3216" data_begin="37" length="16" time="0"/>
  </def>
  <def name="last">
    <single_mapping origin_block="4095" data_block="54" time="0"/>
  </def>
  <device dev_id="0" mapped_blocks="38" transaction="0" creation_time="0" snap_time="1">
    <single_mapping origin_block="0" data_block="55" time="1"/>
    <range_mapping origin_begin="1" data_begin="1" length="3" time="0"/>
    <single_mapping origin_block="160" data_block="4" time="0"/>
    <single_mapping origin_block="161" data_block="56" time="1"/>
    <range_mapping origin_begin="162" data_begin="6" length="14" time="0"/>
    <ref name="1600"/>
    <ref name="tail"/>
    <ref name="last"/>
  </device>
  <device dev_id="1" mapped_blocks="60" transaction="1" creation_time="1" snap_time="1">
    <range_mapping origin_begin="0" data_begin="0" length="4" time="0"/>
    <single_mapping origin_block="160" data_block="57" time="1"/>
    <range_mapping origin_begin="161" data_begin="5" length="15" time="0"/>
    <range_mapping origin_begin="804" data_begin="62" length="4" time="1"/>
    <single_mapping origin_block="832" data_block="66" time="1"/>
    <ref name="1600"/>
    <range_mapping origin_begin="3200" data_begin="21" length="16" time="0"/>
    <ref name="tail"/>
    <single_mapping origin_block="4080" data_block="53" time="0"/>
    <ref name="last"/>
  </device>
</superblock>
`
	path := restoreFile(t, []byte(shared), 8<<20)
	thinCheck(t, path)
	if got := thinDump(t, path); !bytes.Equal(got, want) {
		t.Fatalf("thin_dump of the restored image differs from kernel-small.xml:\n%s", got)
	}
}
