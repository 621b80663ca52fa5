package thinxml_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/thind-storage/thind/metastream"
	"github.com/thind-storage/thind/thinxml"
)

// A metadata walker feeds the Writer one mapped block at a time; the
// Writer prints runs exactly as thin_dump 0.9.0 does.
func ExampleWriter() {
	w := thinxml.NewWriter(os.Stdout)
	_ = w.BeginSuperblock(metastream.Superblock{Time: 1, Transaction: 2, Version: 2, DataBlockSize: 128, NrDataBlocks: 2048})
	_ = w.BeginDevice(metastream.Device{DevID: 0, MappedBlocks: 4, SnapTime: 1})
	for _, b := range []struct {
		origin, data uint64
		time         uint32
	}{{0, 55, 1}, {1, 1, 0}, {2, 2, 0}, {3, 3, 1}} {
		if err := w.Map(metastream.Mapping{Origin: b.origin, Data: b.data, Len: 1, Time: b.time}); err != nil {
			fmt.Println(err)
			return
		}
	}
	_ = w.EndDevice()
	if err := w.EndSuperblock(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// <superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="2048">
	//   <device dev_id="0" mapped_blocks="4" transaction="0" creation_time="0" snap_time="1">
	//     <single_mapping origin_block="0" data_block="55" time="1"/>
	//     <range_mapping origin_begin="1" data_begin="1" length="2" time="0"/>
	//     <single_mapping origin_block="3" data_block="3" time="1"/>
	//   </device>
	// </superblock>
}

// restorer is a stand-in for a metadata restorer: it consumes the events
// and commits only in EndSuperblock, which Parse calls only for a valid
// document.
type restorer struct {
	sb     metastream.Superblock
	blocks uint64
}

func (r *restorer) BeginSuperblock(sb metastream.Superblock) error { r.sb = sb; return nil }
func (r *restorer) BeginDevice(d metastream.Device) error          { return nil }
func (r *restorer) EndDevice() error                               { return nil }

func (r *restorer) Map(m metastream.Mapping) error {
	// Compare without m.Data+m.Len, which may wrap around.
	if m.Len > r.sb.NrDataBlocks || m.Data > r.sb.NrDataBlocks-m.Len {
		return fmt.Errorf("data blocks %d..%d beyond nr_data_blocks %d", m.Data, m.Data+m.Len-1, r.sb.NrDataBlocks)
	}
	r.blocks += m.Len
	return nil
}

func (r *restorer) EndSuperblock() error {
	fmt.Printf("commit: %d blocks mapped\n", r.blocks)
	return nil
}

func ExampleParse() {
	doc := `<superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="100">
  <device dev_id="0" mapped_blocks="4" transaction="0" creation_time="0" snap_time="1">
    <range_mapping origin_begin="1" data_begin="1" length="3" time="0"/>
    <single_mapping origin_block="9" data_block="200" time="0"/>
  </device>
</superblock>
`
	err := thinxml.Parse(strings.NewReader(doc), &restorer{})
	fmt.Println(err)
	err = thinxml.Parse(strings.NewReader(strings.Replace(doc, `data_block="200"`, `data_block="20"`, 1)), &restorer{})
	fmt.Println(err)
	// Output:
	// thinxml: line 4, column 5: data blocks 200..200 beyond nr_data_blocks 100
	// commit: 4 blocks mapped
	// <nil>
}
