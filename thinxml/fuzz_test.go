package thinxml

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"
	"testing/iotest"

	"github.com/thind-storage/thind/metastream"
)

// fuzzSeeds adds the small fixtures (real thin_dump and thin_restore
// inputs) and documents in the other forms Parse accepts.
func fuzzSeeds(f *testing.F) {
	for _, path := range fixtures(f) {
		doc, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		if len(doc) <= 8<<10 {
			f.Add(doc)
		}
	}
	f.Add([]byte(`<?xml version="1.0"?><!-- c --><superblock uuid='a&amp;&#x41;' time="1" transaction="2" data_block_size="128" nr_data_blocks="9" metadata_snap="3">
<device dev_id="1" mapped_blocks="2" transaction="3" creation_time="4" snap_time="5"/>
<device dev_id="2" mapped_blocks="2" transaction="3" creation_time="4" snap_time="5"><single_mapping time="0" origin_block="1" data_block="2"></single_mapping>
<range_mapping origin_begin="18446744073709551614" data_begin="0" length="2" time="4294967295"/><single_mapping origin_block="1" data_block="2" time="0"/><single_mapping origin_block="2" data_block="3" time="0"/></device></superblock>`))
	f.Add([]byte(`<superblock uuid="" time="0" transaction="0" data_block_size="0" nr_data_blocks="0"/>`))
	f.Add([]byte(`<superblock uuid="" time="1" transaction="2" data_block_size="128" nr_data_blocks="9"><def name="s"><single_mapping origin_block="1" data_block="2" time="0"/>
<range_mapping origin_begin="3" data_begin="4" length="2" time="1"/></def><def name="e"/>
<device dev_id="1" mapped_blocks="3" transaction="3" creation_time="4" snap_time="5"><ref name="s"/><ref name="e"></ref></device>
<device dev_id="2" mapped_blocks="4" transaction="3" creation_time="4" snap_time="5"><ref name="s"/><single_mapping origin_block="7" data_block="8" time="0"/></device></superblock>`))
}

// FuzzParse checks that Parse never panics, that reading the input a byte
// at a time changes nothing, and that whatever it accepts
// round-trips: written by the Writer, the document parses again to the
// same events with runs joined as thin_dump joins them, and writing those
// gives the same bytes. Anything it refuses must be a *ParseError.
func FuzzParse(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, doc []byte) {
		events, err := parseEvents(doc)
		// Input arriving a byte at a time splits every token across
		// refills; the result must not change.
		var slow recorder
		slowErr := Parse(iotest.OneByteReader(bytes.NewReader(doc)), &slow)
		if fmt.Sprint(slowErr) != fmt.Sprint(err) {
			t.Fatalf("one-byte reads: error %v, want %v", slowErr, err)
		}
		if d := diffEvents(slow.events, events); d != "" {
			t.Fatalf("one-byte reads: %s", d)
		}
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Column < 1 || pe.Offset < 0 || pe.Offset > int64(len(doc)) {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		out, err := writeEvents(events)
		if err != nil {
			t.Fatalf("parsed document cannot be written: %v", err)
		}
		back, err := parseEvents(out)
		if err != nil {
			t.Fatalf("written document does not parse: %v\n%s", err, out)
		}
		if d := diffEvents(back, coalesceEvents(events)); d != "" {
			t.Fatalf("round trip: %s", d)
		}
		again, err := writeEvents(back)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("second write differs (%v)", err)
		}
	})
}

// FuzzWriter drives the Writer with calls decoded from the input (a
// walker feeding mappings in any order) and checks that Parse reads back
// exactly the thin_dump coalescing of those calls.
func FuzzWriter(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add(bytes.Repeat([]byte{3, 1, 1, 0}, 20))
	f.Fuzz(func(t *testing.T, in []byte) {
		events := eventsFromBytes(in)
		out, err := writeEvents(events)
		if err != nil {
			t.Fatalf("valid calls rejected: %v", err)
		}
		back, err := parseEvents(out)
		if err != nil {
			t.Fatalf("written document does not parse: %v\n%s", err, out)
		}
		if d := diffEvents(back, coalesce(events)); d != "" {
			t.Fatalf("%s\n%s", d, out)
		}
	})
}

// eventsFromBytes decodes a valid call sequence from fuzz input: each
// byte pair is an operation and an argument; mapping steps stay small so
// the oracle can expand runs block by block.
func eventsFromBytes(in []byte) []event {
	ev := []event{{kind: 'S', sb: metastream.Superblock{UUID: string(in[:min(len(in), 4)]), Time: 1}}}
	if badText([]byte(ev[0].sb.UUID)) >= 0 {
		ev[0].sb.UUID = ""
	}
	inDev := false
	var origin, data uint64
	for i := 0; i+1 < len(in); i += 2 {
		op, arg := in[i]%8, uint64(in[i+1])
		switch {
		case op == 0 && inDev:
			ev = append(ev, event{kind: 'd'})
			inDev = false
		case op == 0 || !inDev:
			ev = append(ev, event{kind: 'D', dev: metastream.Device{DevID: uint32(arg)}})
			inDev = true
		case op < 4: // continue: the common case
			m := metastream.Mapping{Origin: origin + 1, Data: data + 1, Len: 1 + arg%4, Time: uint32(op % 2)}
			if m.Invalid() != "" {
				m.Len = 1
			}
			ev = append(ev, event{kind: 'M', m: m})
			origin, data = m.Origin+m.Len-1, m.Data+m.Len-1
		case op == 4: // jump anywhere, including backwards and near 2^64
			origin, data = arg*0x0101010101010101, arg<<3
			ev = append(ev, event{kind: 'M', m: metastream.Mapping{Origin: origin, Data: data, Len: 1, Time: 0}})
		default:
			origin += arg
			ev = append(ev, event{kind: 'M', m: metastream.Mapping{Origin: origin, Data: data, Len: 1, Time: uint32(arg % 3)}})
		}
	}
	if inDev {
		ev = append(ev, event{kind: 'd'})
	}
	return append(ev, event{kind: 's'})
}
