package thinxml

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/thind-storage/thind/metastream"
)

const testSuperblockLine = `<superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="1000">` + "\n"

var testSuperblock = metastream.Superblock{Time: 1, Transaction: 2, Version: 2, DataBlockSize: 128, NrDataBlocks: 1000}

func single(origin, data uint64, time uint32) metastream.Mapping {
	return metastream.Mapping{Origin: origin, Data: data, Len: 1, Time: time}
}

// oneDevice wraps mappings in a superblock and device 0.
func oneDevice(ms ...metastream.Mapping) []event {
	ev := []event{{kind: 'S', sb: testSuperblock}, {kind: 'D', dev: metastream.Device{MappedBlocks: 7, Transaction: 1, SnapTime: 1}}}
	for _, m := range ms {
		ev = append(ev, event{kind: 'M', m: m})
	}
	return append(ev, event{kind: 'd'}, event{kind: 's'})
}

// oneDeviceXML wraps mapping lines the same way.
func oneDeviceXML(lines ...string) string {
	s := testSuperblockLine + `  <device dev_id="0" mapped_blocks="7" transaction="1" creation_time="0" snap_time="1">` + "\n"
	for _, l := range lines {
		s += "    " + l + "\n"
	}
	return s + "  </device>\n</superblock>\n"
}

func TestWriterCoalescing(t *testing.T) {
	tests := []struct {
		name   string
		events []event
		want   string
	}{{
		name:   "consecutive blocks with equal time become one range",
		events: oneDevice(single(10, 100, 0), single(11, 101, 0), single(12, 102, 0)),
		want:   oneDeviceXML(`<range_mapping origin_begin="10" data_begin="100" length="3" time="0"/>`),
	}, {
		name:   "a different time ends the run although origin and data continue",
		events: oneDevice(single(10, 100, 0), single(11, 101, 1), single(12, 102, 1)),
		want: oneDeviceXML(
			`<single_mapping origin_block="10" data_block="100" time="0"/>`,
			`<range_mapping origin_begin="11" data_begin="101" length="2" time="1"/>`),
	}, {
		name:   "a gap in data ends the run",
		events: oneDevice(single(10, 100, 0), single(11, 200, 0)),
		want: oneDeviceXML(
			`<single_mapping origin_block="10" data_block="100" time="0"/>`,
			`<single_mapping origin_block="11" data_block="200" time="0"/>`),
	}, {
		name:   "a gap in origin ends the run",
		events: oneDevice(single(10, 100, 0), single(12, 101, 0)),
		want: oneDeviceXML(
			`<single_mapping origin_block="10" data_block="100" time="0"/>`,
			`<single_mapping origin_block="12" data_block="101" time="0"/>`),
	}, {
		name:   "data going backwards ends the run",
		events: oneDevice(single(10, 100, 0), single(11, 99, 0)),
		want: oneDeviceXML(
			`<single_mapping origin_block="10" data_block="100" time="0"/>`,
			`<single_mapping origin_block="11" data_block="99" time="0"/>`),
	}, {
		name:   "runs given as runs are joined like single blocks",
		events: oneDevice(metastream.Mapping{Origin: 0, Data: 5, Len: 3}, single(3, 8, 0), metastream.Mapping{Origin: 4, Data: 9, Len: 10}),
		want:   oneDeviceXML(`<range_mapping origin_begin="0" data_begin="5" length="14" time="0"/>`),
	}, {
		name:   "mappings out of order are printed as given, not sorted",
		events: oneDevice(single(11, 101, 0), single(10, 100, 0)),
		want: oneDeviceXML(
			`<single_mapping origin_block="11" data_block="101" time="0"/>`,
			`<single_mapping origin_block="10" data_block="100" time="0"/>`),
	}, {
		name:   "a run ending at the last 64-bit block does not wrap to block 0",
		events: oneDevice(single(math.MaxUint64, math.MaxUint64, 0), single(0, 0, 0)),
		want: oneDeviceXML(
			`<single_mapping origin_block="18446744073709551615" data_block="18446744073709551615" time="0"/>`,
			`<single_mapping origin_block="0" data_block="0" time="0"/>`),
	}, {
		name: "runs whose joined length would reach 2^64 stay apart",
		events: oneDevice(
			metastream.Mapping{Origin: 0, Data: 0, Len: 1 << 63},
			metastream.Mapping{Origin: 1 << 63, Data: 1 << 63, Len: 1 << 63}),
		want: oneDeviceXML(
			`<range_mapping origin_begin="0" data_begin="0" length="9223372036854775808" time="0"/>`,
			`<range_mapping origin_begin="9223372036854775808" data_begin="9223372036854775808" length="9223372036854775808" time="0"/>`),
	}, {
		name:   "an empty device prints its open and close tags on consecutive lines",
		events: oneDevice(),
		want:   oneDeviceXML(),
	}, {
		name: "runs never cross devices",
		events: []event{
			{kind: 'S', sb: testSuperblock},
			{kind: 'D', dev: metastream.Device{DevID: 1}}, {kind: 'M', m: single(5, 5, 0)}, {kind: 'd'},
			{kind: 'D', dev: metastream.Device{DevID: 2}}, {kind: 'M', m: single(6, 6, 0)}, {kind: 'd'},
			{kind: 's'},
		},
		want: testSuperblockLine +
			`  <device dev_id="1" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">` + "\n" +
			`    <single_mapping origin_block="5" data_block="5" time="0"/>` + "\n" +
			"  </device>\n" +
			`  <device dev_id="2" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">` + "\n" +
			`    <single_mapping origin_block="6" data_block="6" time="0"/>` + "\n" +
			"  </device>\n</superblock>\n",
	}, {
		name:   "a pool without devices is two lines",
		events: []event{{kind: 'S', sb: testSuperblock}, {kind: 's'}},
		want:   testSuperblockLine + "</superblock>\n",
	}, {
		name: "metadata_snap is printed after nr_data_blocks only when set",
		events: []event{{kind: 'S', sb: metastream.Superblock{
			Time: 4294967295, Transaction: math.MaxUint64, Flags: 1, Version: 1,
			DataBlockSize: 2097152, NrDataBlocks: 1 << 40, MetadataSnap: 25,
		}}, {kind: 's'}},
		want: `<superblock uuid="" time="4294967295" transaction="18446744073709551615" flags="1" version="1" data_block_size="2097152" nr_data_blocks="1099511627776" metadata_snap="25">` + "\n</superblock>\n",
	}, {
		name:   "the uuid is escaped so that it parses back unchanged",
		events: []event{{kind: 'S', sb: metastream.Superblock{UUID: "a&b<c>\"d'\t\n\r é"}}, {kind: 's'}},
		want:   `<superblock uuid="a&amp;b&lt;c&gt;&quot;d'&#9;&#10;&#13; é" time="0" transaction="0" flags="0" version="0" data_block_size="0" nr_data_blocks="0">` + "\n</superblock>\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := writeEvents(tt.events)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("written document differs at %s", firstDiffLine(got, []byte(tt.want)))
			}
			// What the Writer prints, Parse must read back as the
			// coalesced form of what went in.
			back, err := parseEvents(got)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffEvents(back, coalesceEvents(tt.events)); d != "" {
				t.Fatal(d)
			}
		})
	}
}

// coalesceEvents is coalesce for documents whose runs are too long to
// expand block by block: it joins whole runs, which gives the same result
// when every run given is already continuous.
func coalesceEvents(events []event) []event {
	var out []event
	var run *metastream.Mapping
	for _, e := range events {
		if e.kind != 'M' {
			run = nil
			out = append(out, e)
			continue
		}
		m := e.m
		if run != nil && m.Time == run.Time && m.Origin > run.Origin && m.Origin-run.Origin == run.Len &&
			m.Data > run.Data && m.Data-run.Data == run.Len && run.Len+m.Len > run.Len {
			run.Len += m.Len
			continue
		}
		out = append(out, e)
		run = &out[len(out)-1].m
	}
	return out
}

func TestWriterRejectsMisuse(t *testing.T) {
	sb := event{kind: 'S', sb: testSuperblock}
	dev := event{kind: 'D'}
	tests := []struct {
		name   string
		events []event
		want   error
		msg    string
	}{
		{"a device before the superblock", []event{dev}, ErrSequence, "BeginDevice before BeginSuperblock"},
		{"a mapping outside a device", []event{sb, {kind: 'M', m: single(1, 1, 0)}}, ErrSequence, "Map in the superblock, outside any device"},
		{"a device inside a device", []event{sb, dev, dev}, ErrSequence, "BeginDevice inside a device"},
		{"ending the superblock inside a device", []event{sb, dev, {kind: 's'}}, ErrSequence, "EndSuperblock inside a device"},
		{"a second superblock", []event{sb, {kind: 's'}, sb}, ErrSequence, "BeginSuperblock after EndSuperblock"},
		{"ending a device twice", []event{sb, dev, {kind: 'd'}, {kind: 'd'}}, ErrSequence, "EndDevice in the superblock"},
		{"a run of length 0", []event{sb, dev, {kind: 'M', m: metastream.Mapping{Origin: 1, Data: 1}}}, ErrInvalidValue, "length 0"},
		{"a run past the last origin block", []event{sb, dev, {kind: 'M', m: metastream.Mapping{Origin: math.MaxUint64, Data: 1, Len: 2}}}, ErrInvalidValue, "origin + length overflows"},
		{"a run past the last data block", []event{sb, dev, {kind: 'M', m: metastream.Mapping{Origin: 1, Data: math.MaxUint64 - 1, Len: 3}}}, ErrInvalidValue, "data block + length overflows"},
		{"a uuid with a control character", []event{{kind: 'S', sb: metastream.Superblock{UUID: "a\x01"}}}, ErrInvalidValue, "byte 1 is not an XML character"},
		{"a uuid that is not UTF-8", []event{{kind: 'S', sb: metastream.Superblock{UUID: "\xff"}}}, ErrInvalidValue, "byte 0 is not an XML character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWriter(&bytes.Buffer{})
			err := replay(tt.events, w)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got error %v, want %v containing %q", err, tt.want, tt.msg)
			}
			// Errors are sticky.
			if again := w.EndSuperblock(); again != err {
				t.Fatalf("after an error, EndSuperblock returned %v, want the same error", again)
			}
		})
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestWriterReportsWriteErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	w := NewWriter(failingWriter{boom})
	if err := replay(oneDevice(single(1, 2, 3)), w); !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
	if err := w.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush after a failure: got %v, want %v", err, boom)
	}
}

// TestWriterFlushesLargeDocuments checks that output larger than the
// buffer arrives complete and in order.
func TestWriterFlushesLargeDocuments(t *testing.T) {
	var ms []metastream.Mapping
	for i := uint64(0); i < 20000; i++ {
		ms = append(ms, single(2*i, i, 0)) // never coalesce
	}
	events := oneDevice(ms...)
	var out bytes.Buffer
	if err := replay(events, NewWriter(&out)); err != nil {
		t.Fatal(err)
	}
	if out.Len() < 4*writeBufSize {
		t.Fatalf("document of %d bytes is too small to test flushing", out.Len())
	}
	back, err := parseEvents(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if d := diffEvents(back, events); d != "" {
		t.Fatal(d)
	}
}
