package thinxml

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/thind-storage/thind/metastream"
)

// TestParseAccepts checks inputs thin_restore 0.9.0 (expat) accepts but
// thin_dump never writes; each must give the events of the canonical
// document.
func TestParseAccepts(t *testing.T) {
	canonical := `<superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="1000">
  <device dev_id="0" mapped_blocks="7" transaction="1" creation_time="0" snap_time="1">
    <single_mapping origin_block="10" data_block="100" time="0"/>
    <range_mapping origin_begin="20" data_begin="200" length="5" time="1"/>
  </device>
</superblock>
`
	want, err := parseEvents([]byte(canonical))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, doc string }{
		{"attributes in any order and single quotes", `<superblock nr_data_blocks='1000' data_block_size="128" version='2' flags="0" transaction='2' time="1" uuid=''>
<device snap_time="1" creation_time="0" transaction="1" mapped_blocks="7" dev_id="0">
<single_mapping time="0" data_block="100" origin_block="10"/>
<range_mapping time="1" length="5" data_begin="200" origin_begin="20"/>
</device></superblock>`},
		{"all on one line without newline at the end", `<superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="1000"><device dev_id="0" mapped_blocks="7" transaction="1" creation_time="0" snap_time="1"><single_mapping origin_block="10" data_block="100" time="0"/><range_mapping origin_begin="20" data_begin="200" length="5" time="1"/></device></superblock>`},
		{"white space and newlines everywhere tokens may be split", "\n\t <superblock\n uuid = \"\"\ttime\r\n=\n'1' transaction=\"2\" flags=\"0\" version=\"2\" data_block_size=\"128\" nr_data_blocks=\"1000\"\n>\r\n<device dev_id=\"0\" mapped_blocks=\"7\" transaction=\"1\" creation_time=\"0\" snap_time=\"1\"  >\n<single_mapping origin_block=\"10\" data_block=\"100\" time=\"0\"\n/><range_mapping origin_begin=\"20\" data_begin=\"200\" length=\"5\" time=\"1\" />\n</device\n>\n</superblock   >\n\n\n"},
		{"an XML declaration, comments and processing instructions", `<?xml version="1.0" encoding="UTF-8"?>
<!-- thin_dump of pool0 -->
<?tool something ?>
<superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="1000">
  <!-- device 0 -->
  <device dev_id="0" mapped_blocks="7" transaction="1" creation_time="0" snap_time="1">
    <single_mapping origin_block="10" data_block="100" time="0"/><!---->
    <!-- a > b -- -> -->
    <range_mapping origin_begin="20" data_begin="200" length="5" time="1"/>
  </device>
</superblock>
<!-- end -->
<?done?>
`},
		{"a byte order mark before the declaration", "\ufeff<?xml version=\"1.0\"?>" + canonical},
		{"character references and entities in values", `<superblock uuid="" time="&#49;" transaction="&#x32;" flags="0" version="2" data_block_size="1&#50;8" nr_data_blocks="1000">
  <device dev_id="0" mapped_blocks="7" transaction="1" creation_time="0" snap_time="1">
    <single_mapping origin_block="10" data_block="100" time="0"/>
    <range_mapping origin_begin="20" data_begin="200" length="5" time="1"/>
  </device>
</superblock>`},
		{"mappings written as start and end tags", `<superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="1000">
  <device dev_id="0" mapped_blocks="7" transaction="1" creation_time="0" snap_time="1">
    <single_mapping origin_block="10" data_block="100" time="0"></single_mapping>
    <range_mapping origin_begin="20" data_begin="200" length="5" time="1">
    <!-- nothing inside -->
    </range_mapping>
  </device>
</superblock>`},
		{"leading zeros in numbers", `<superblock uuid="" time="01" transaction="002" flags="0" version="2" data_block_size="00128" nr_data_blocks="1000">
  <device dev_id="0" mapped_blocks="7" transaction="1" creation_time="0" snap_time="1">
    <single_mapping origin_block="0000000000000000000000000010" data_block="100" time="0"/>
    <range_mapping origin_begin="20" data_begin="200" length="5" time="1"/>
  </device>
</superblock>`},
		{"shared mappings of thin-provisioning-tools 1.x, replayed where referred to", `<superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="1000">
  <def name="leaf 1">
    <single_mapping origin_block="10" data_block="100" time="0"/>
  </def>
  <def name="nothing"/>
  <def name="unused"><range_mapping origin_begin="1" data_begin="1" length="3" time="0"></range_mapping></def>
  <device dev_id="0" mapped_blocks="7" transaction="1" creation_time="0" snap_time="1">
    <ref name="leaf 1"/>
    <ref name="nothing"></ref>
    <range_mapping origin_begin="20" data_begin="200" length="5" time="1"/>
  </device>
</superblock>`},
		{"attributes the format does not have are ignored, as thin_restore 0.9.0 does", `<superblock uuid="" time="1" transaction="2" flags="0" version="2" data_block_size="128" nr_data_blocks="1000" comment="x &amp; y">
  <device dev_id="0" mapped_blocks="7" transaction="1" creation_time="0" snap_time="1" name="thin0" label="a">
    <single_mapping origin_block="10" data_block="100" time="0"/>
    <range_mapping origin_begin="20" data_begin="200" length="5" time="1"/>
  </device>
</superblock>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEvents([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if d := diffEvents(got, want); d != "" {
				t.Fatal(d)
			}
		})
	}
}

func TestParseDefaultsAndValues(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []event
	}{{
		name: "flags defaults to 0, version to 1 and metadata_snap to 0",
		doc:  `<superblock uuid="u" time="0" transaction="0" data_block_size="128" nr_data_blocks="0"/>`,
		want: []event{{kind: 'S', sb: metastream.Superblock{UUID: "u", Version: 1, DataBlockSize: 128}}, {kind: 's'}},
	}, {
		name: "metadata_snap and maximal values are read",
		doc:  `<superblock uuid="" time="4294967295" transaction="18446744073709551615" flags="4294967295" version="4294967295" data_block_size="4294967295" nr_data_blocks="18446744073709551615" metadata_snap="25"></superblock>`,
		want: []event{{kind: 'S', sb: metastream.Superblock{Time: 1<<32 - 1, Transaction: 1<<64 - 1, Flags: 1<<32 - 1, Version: 1<<32 - 1, DataBlockSize: 1<<32 - 1, NrDataBlocks: 1<<64 - 1, MetadataSnap: 25}}, {kind: 's'}},
	}, {
		name: "the uuid is decoded: entities, character references, normalised white space",
		doc:  "<superblock uuid=\"&lt;&gt;&amp;&apos;&quot;&#9;&#xA;&#13;\t\n\r\n\r|é\" time=\"0\" transaction=\"0\" data_block_size=\"0\" nr_data_blocks=\"0\"/>",
		want: []event{{kind: 'S', sb: metastream.Superblock{UUID: "<>&'\"\t\n\r    |é", Version: 1}}, {kind: 's'}},
	}, {
		name: "a self-closing device is an empty device",
		doc:  `<superblock uuid="" time="0" transaction="0" data_block_size="0" nr_data_blocks="0"><device dev_id="4294967295" mapped_blocks="1" transaction="2" creation_time="3" snap_time="4294967295"/></superblock>`,
		want: []event{{kind: 'S', sb: metastream.Superblock{Version: 1}}, {kind: 'D', dev: metastream.Device{DevID: 1<<32 - 1, MappedBlocks: 1, Transaction: 2, CreationTime: 3, SnapTime: 1<<32 - 1}}, {kind: 'd'}, {kind: 's'}},
	}, {
		name: "mappings pass through unsorted, overlapping and unjoined",
		doc: `<superblock uuid="" time="0" transaction="0" data_block_size="0" nr_data_blocks="0"><device dev_id="0" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">
<single_mapping origin_block="5" data_block="5" time="0"/>
<single_mapping origin_block="4" data_block="4" time="0"/>
<range_mapping origin_begin="5" data_begin="6" length="1" time="0"/>
<range_mapping origin_begin="18446744073709551614" data_begin="0" length="2" time="16777216"/>
</device></superblock>`,
		want: []event{{kind: 'S', sb: metastream.Superblock{Version: 1}}, {kind: 'D'},
			{kind: 'M', m: single(5, 5, 0)}, {kind: 'M', m: single(4, 4, 0)}, {kind: 'M', m: single(5, 6, 0)},
			{kind: 'M', m: metastream.Mapping{Origin: 1<<64 - 2, Data: 0, Len: 2, Time: 1 << 24}},
			{kind: 'd'}, {kind: 's'}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEvents([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if d := diffEvents(got, tt.want); d != "" {
				t.Fatal(d)
			}
		})
	}
}

// TestParseRejects lists what Parse refuses and the message it gives.
func TestParseRejects(t *testing.T) {
	const sb = `<superblock uuid="" time="0" transaction="0" data_block_size="128" nr_data_blocks="100">`
	const dev = `<device dev_id="0" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">`
	tests := []struct{ name, doc, want string }{
		{"an empty input", "", "line 1, column 1: no <superblock> element"},
		{"only white space and a comment", "\n  <!-- x -->\n", "line 3, column 1: no <superblock> element"},
		{"an unknown element", sb + "\n<dev dev_id=\"0\"/>", "line 2, column 1: unknown element <dev>"},
		{"an unknown end tag", sb + "\n</dev>", "line 2, column 1: unknown element </dev>"},
		{"a ref to no def", sb + dev + "\n<ref name=\"0\"/>", `line 2, column 1: <ref name="0"> comes before any <def> of that name`},
		{"a ref before its def", sb + dev + "\n<ref name=\"a\"/></device>\n<def name=\"a\"/>", `line 2, column 1: <ref name="a"> comes before any <def> of that name`},
		{"a def defined twice", sb + "<def name=\"a\"/>\n<def name=\"a\"/>", `line 2, column 1: <def name="a"> is defined twice`},
		{"a def without a name", sb + "\n<def>", "line 2, column 1: <def> is missing attribute name"},
		{"a def outside the superblock", `<def name="a"/>`, "line 1, column 1: <def> outside <superblock>"},
		{"a def inside a device", sb + dev + "\n<def name=\"a\"/>", "line 2, column 1: <def> inside <device> opened at line 1"},
		{"a device inside a def", sb + "\n<def name=\"a\">\n" + dev, "line 3, column 1: <device> inside <def> opened at line 2"},
		{"a ref inside a def", sb + "\n<def name=\"a\">\n<ref name=\"a\"/>", "line 3, column 1: <ref> outside <device>"},
		{"an element inside a ref", sb + "<def name=\"a\"/>" + dev + "\n<ref name=\"a\">\n<single_mapping origin_block=\"0\" data_block=\"0\" time=\"0\"/>", "line 3, column 1: <single_mapping> inside <ref> opened at line 2: <ref> has no content"},
		{"an unclosed def", sb + "\n<def name=\"a\">", "unexpected end of input: <def> opened at line 2 is not closed"},
		{"a device outside the superblock", dev, "line 1, column 1: <device> outside <superblock>"},
		{"a mapping outside a device", sb + "\n <single_mapping origin_block=\"0\" data_block=\"0\" time=\"0\"/>", "line 2, column 2: <single_mapping> outside <device>"},
		{"a mapping before the superblock", `<range_mapping origin_begin="0" data_begin="0" length="2" time="0"/>`, "line 1, column 1: <range_mapping> outside <device>"},
		{"a device inside a device", sb + "\n" + dev + "\n" + dev, "line 3, column 1: <device> inside <device> opened at line 2"},
		{"a superblock inside the superblock", sb + "\n" + sb, "line 2, column 1: <superblock> inside <superblock> opened at line 1"},
		{"an element inside a mapping", sb + dev + "\n<single_mapping origin_block=\"0\" data_block=\"0\" time=\"0\">\n<single_mapping origin_block=\"1\" data_block=\"0\" time=\"0\"/>", "line 3, column 1: <single_mapping> inside <single_mapping> opened at line 2: mappings have no content"},
		{"a superblock that is never closed", sb + "\n" + dev + "\n</device>\n", "line 4, column 1: unexpected end of input: <superblock> opened at line 1 is not closed"},
		{"a device that is never closed", sb + "\n" + dev + "\n", "line 3, column 1: unexpected end of input: <device> opened at line 2 is not closed"},
		{"a mismatched end tag", sb + "\n" + dev + "\n</superblock>", "line 3, column 1: </superblock> does not match <device> opened at line 2"},
		{"an end tag without a start tag", "</superblock>", "line 1, column 1: </superblock> without a matching start tag"},
		{"input ending inside a tag", sb + "\n<device dev_id=\"0", "line 2, column 1: unexpected end of input in the middle of a tag"},
		{"a missing required attribute", `<superblock uuid="" time="0" data_block_size="128" nr_data_blocks="100">`, "line 1, column 1: <superblock> is missing attribute transaction"},
		{"a missing uuid", `<superblock time="0" transaction="0" data_block_size="128" nr_data_blocks="100">`, "<superblock> is missing attribute uuid"},
		{"a device without dev_id", sb + "\n" + `<device mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">`, "line 2, column 1: <device> is missing attribute dev_id"},
		{"a range without length", sb + dev + "\n" + `<range_mapping origin_begin="0" data_begin="0" time="0"/>`, "line 2, column 1: <range_mapping> is missing attribute length"},
		{"a single mapping without time", sb + dev + "\n" + `<single_mapping origin_block="0" data_block="0"/>`, "line 2, column 1: <single_mapping> is missing attribute time"},
		{"a duplicate attribute", sb + dev + "\n" + `<single_mapping origin_block="0" data_block="0" time="0" data_block="1"/>`, `line 2, column 58: <single_mapping> has attribute data_block twice`},
		{"a duplicate unknown attribute", sb + dev + "\n" + `<single_mapping x="0" origin_block="0" data_block="0" time="0" x="1"/>`, `<single_mapping> has attribute x twice`},
		{"a non-numeric value", sb + dev + "\n" + `<single_mapping origin_block="12a" data_block="0" time="0"/>`, `line 2, column 30: <single_mapping> attribute origin_block="12a": not an unsigned decimal number`},
		{"a negative value", sb + dev + "\n" + `<single_mapping origin_block="-1" data_block="0" time="0"/>`, `attribute origin_block="-1": not an unsigned decimal number`},
		{"a value with spaces", sb + dev + "\n" + `<single_mapping origin_block=" 1" data_block="0" time="0"/>`, `attribute origin_block=" 1": not an unsigned decimal number`},
		{"an empty value", sb + dev + "\n" + `<single_mapping origin_block="" data_block="0" time="0"/>`, `attribute origin_block="": empty value`},
		{"a value overflowing 64 bits", sb + dev + "\n" + `<single_mapping origin_block="18446744073709551616" data_block="0" time="0"/>`, `attribute origin_block="18446744073709551616": does not fit in 64 bits`},
		{"a time overflowing 32 bits", sb + dev + "\n" + `<single_mapping origin_block="1" data_block="0" time="4294967296"/>`, `<single_mapping> attribute time="4294967296": does not fit in 32 bits`},
		{"a dev_id overflowing 32 bits", sb + "\n" + `<device dev_id="4294967296" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">`, `line 2, column 16: <device> attribute dev_id="4294967296": does not fit in 32 bits`},
		{"a zero-length range", sb + dev + "\n" + `<range_mapping origin_begin="0" data_begin="0" length="0" time="0"/>`, "line 2, column 1: <range_mapping> length 0"},
		{"a range past the last origin block", sb + dev + "\n" + `<range_mapping origin_begin="18446744073709551615" data_begin="0" length="2" time="0"/>`, "<range_mapping> origin + length overflows 64 bits"},
		{"a range past the last data block", sb + dev + "\n" + `<range_mapping origin_begin="0" data_begin="18446744073709551615" length="2" time="0"/>`, "<range_mapping> data block + length overflows 64 bits"},
		{"trailing garbage", sb + "</superblock>\nxyz", `line 2, column 1: trailing garbage "xyz" after </superblock>`},
		{"a second superblock", sb + "</superblock>\n" + sb, "line 2, column 1: trailing garbage <superblock> after </superblock>"},
		{"an end tag after the end", sb + "</superblock>\n</superblock>", "line 2, column 1: trailing garbage </superblock> after </superblock>"},
		{"text before the superblock", "hello" + sb, `line 1, column 1: text "hello" before <superblock>`},
		{"text inside a device", sb + dev + "\n  0 1 2\n", `line 2, column 3: text "0 1 2" inside <device>: only elements are allowed`},
		{"a CDATA section", sb + "<![CDATA[x]]>", "CDATA section: text is not allowed in this format"},
		{"a DOCTYPE", "<!DOCTYPE superblock [<!ENTITY a \"1\">]>" + sb, "line 1, column 1: DOCTYPE is not supported"},
		{"an unterminated comment", sb + "\n<!-- x ->\n", "line 2, column 1: unexpected end of input: comment is not terminated by \"-->\""},
		{"an unterminated processing instruction", "<?pi x", `processing instruction is not terminated by "?>"`},
		{"an XML declaration after the start", " <?xml version=\"1.0\"?>" + sb, "line 1, column 2: XML declaration is only allowed at the start of the document"},
		{"an unknown entity", `<superblock uuid="&nbsp;" time="0" transaction="0" data_block_size="128" nr_data_blocks="100"/>`, `line 1, column 19: attribute uuid: unknown or invalid reference "&nbsp;"`},
		{"a bare ampersand", `<superblock uuid="a & b" time="0" transaction="0" data_block_size="128" nr_data_blocks="100"/>`, `line 1, column 21: attribute uuid: '&' does not start a reference ending in ';'`},
		{"an ampersand before a later semicolon", `<superblock uuid="a & b;" time="0" transaction="0" data_block_size="128" nr_data_blocks="100"/>`, `line 1, column 21: attribute uuid: unknown or invalid reference "& b;"`},
		{"a reference to a control character", `<superblock uuid="&#1;" time="0" transaction="0" data_block_size="128" nr_data_blocks="100"/>`, `unknown or invalid reference "&#1;"`},
		{"a reference beyond Unicode", `<superblock uuid="&#x110000;" time="0" transaction="0" data_block_size="128" nr_data_blocks="100"/>`, `unknown or invalid reference "&#x110000;"`},
		{"a raw control character", "<superblock uuid=\"\x01\" time=\"0\" transaction=\"0\" data_block_size=\"128\" nr_data_blocks=\"100\"/>", "line 1, column 19: attribute uuid: invalid character"},
		{"invalid UTF-8", "<superblock uuid=\"\xc3\" time=\"0\" transaction=\"0\" data_block_size=\"128\" nr_data_blocks=\"100\"/>", "attribute uuid: invalid character"},
		{"a '<' in a value", `<superblock uuid="<" time="0" transaction="0" data_block_size="128" nr_data_blocks="100"/>`, `line 1, column 19: attribute uuid: '<' is not allowed in an attribute value`},
		{"an unquoted value", `<superblock uuid=x time="0"/>`, "line 1, column 18: <superblock> attribute uuid: value must be quoted"},
		{"an attribute without a value", `<superblock uuid time="0"/>`, "line 1, column 18: <superblock> attribute uuid: expected '='"},
		{"attributes without space between", `<superblock uuid=""time="0"/>`, `line 1, column 20: unexpected character 't' in <superblock> tag`},
		{"a stray character in a tag", sb + dev + "\n" + `<single_mapping origin_block="1" , data_block="0" time="0"/>`, `line 2, column 34: unexpected character ',' in <single_mapping> tag`},
		{"a '/' not followed by '>'", sb + dev + "\n" + `<single_mapping origin_block="1" data_block="0" time="0"/ >`, `line 2, column 57: expected '>' after '/' in <single_mapping> tag`},
		{"a '<' without a name", sb + "\n< device>", "line 2, column 1: malformed tag: '<' must be followed by an element name"},
		{"an unterminated value", sb + dev + "\n" + `<single_mapping origin_block="1 data_block="0" time="0"/>`, `line 2, column 30: <single_mapping> attribute origin_block="1 data_block=": not an unsigned decimal number`},
		{"an end tag with attributes", sb + "</superblock x=\"1\">", "line 1, column 89: malformed end tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseEvents([]byte(tt.doc))
			if err == nil {
				t.Fatal("parsed without error")
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			if pe.Err != nil {
				t.Errorf("syntax error carries an underlying error %v", pe.Err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error\n %s\ndoes not contain\n %s", err, tt.want)
			}
		})
	}
}

// stopAt is an Emitter that fails on its n-th call.
type stopAt struct {
	recorder
	n   int
	err error
}

func (s *stopAt) tick() error {
	if s.n--; s.n == 0 {
		return s.err
	}
	return nil
}
func (s *stopAt) BeginSuperblock(sb metastream.Superblock) error {
	s.recorder.BeginSuperblock(sb)
	return s.tick()
}
func (s *stopAt) EndSuperblock() error                  { s.recorder.EndSuperblock(); return s.tick() }
func (s *stopAt) BeginDevice(d metastream.Device) error { s.recorder.BeginDevice(d); return s.tick() }
func (s *stopAt) EndDevice() error                      { s.recorder.EndDevice(); return s.tick() }
func (s *stopAt) Map(m metastream.Mapping) error        { s.recorder.Map(m); return s.tick() }

func TestParseStopsOnEmitterError(t *testing.T) {
	doc := `<superblock uuid="" time="0" transaction="0" data_block_size="128" nr_data_blocks="100">
  <device dev_id="0" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">
    <single_mapping origin_block="1" data_block="101" time="0"/>
  </device>
</superblock>
`
	wantPos := []string{"line 1, column 1", "line 2, column 3", "line 3, column 5", "line 4, column 3", "line 6, column 1"}
	for n := 1; n <= 5; n++ {
		full := errors.New("restorer: data block out of range")
		em := &stopAt{n: n, err: full}
		err := Parse(strings.NewReader(doc), em)
		if !errors.Is(err, full) {
			t.Fatalf("call %d: got %v, want %v", n, err, full)
		}
		if !strings.Contains(err.Error(), wantPos[n-1]) {
			t.Errorf("call %d: error %q does not name %s", n, err, wantPos[n-1])
		}
		if len(em.events) != n {
			t.Errorf("call %d: parsing went on after the error: %d events", n, len(em.events))
		}
	}
}

func TestParseEndSuperblockWaitsForCleanEnd(t *testing.T) {
	doc := `<superblock uuid="" time="0" transaction="0" data_block_size="128" nr_data_blocks="100"></superblock> junk`
	var r recorder
	if err := Parse(strings.NewReader(doc), &r); err == nil {
		t.Fatal("parsed without error")
	}
	for _, e := range r.events {
		if e.kind == 's' {
			t.Fatal("EndSuperblock was called for a document with trailing garbage")
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestParseReportsReadErrors(t *testing.T) {
	boom := errors.New("EIO")
	err := Parse(errReader{boom}, &recorder{})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
}

func TestParseRefusesHugeTags(t *testing.T) {
	doc := `<superblock uuid="` + strings.Repeat("x", maxTagSize) + `" time="0" transaction="0" data_block_size="128" nr_data_blocks="100"/>`
	err := Parse(strings.NewReader(doc), &recorder{})
	if err == nil || !strings.Contains(err.Error(), "token longer than") {
		t.Fatalf("got %v, want a token-too-long error", err)
	}
	// Comments are skipped in a streaming way and may be of any length.
	doc = "<!--" + strings.Repeat("y", 3*maxTagSize) + `-->` + `<superblock uuid="" time="0" transaction="0" data_block_size="128" nr_data_blocks="100"/>`
	if err := Parse(strings.NewReader(doc), &recorder{}); err != nil {
		t.Fatal(err)
	}
}

// TestParseManyUnknownAttributes checks that duplicate detection among
// attributes the format does not have stays linear.
func TestParseManyUnknownAttributes(t *testing.T) {
	var b strings.Builder
	b.WriteString(`<superblock uuid="" time="0" transaction="0" data_block_size="128" nr_data_blocks="100"`)
	for i := range 60000 {
		fmt.Fprintf(&b, " a%d=''", i)
	}
	b.WriteString("/>")
	if err := Parse(strings.NewReader(b.String()), &recorder{}); err != nil {
		t.Fatal(err)
	}
}

// The runs held for <def> elements are bounded.
func TestParseBoundsSharedRuns(t *testing.T) {
	defer func(n int) { maxSharedRuns = n }(maxSharedRuns)
	maxSharedRuns = 2
	doc := `<superblock uuid="" time="0" transaction="0" data_block_size="128" nr_data_blocks="100">
<def name="a"><single_mapping origin_block="0" data_block="0" time="0"/></def>
<def name="b"><single_mapping origin_block="1" data_block="1" time="0"/>
<single_mapping origin_block="2" data_block="2" time="0"/></def></superblock>`
	_, err := parseEvents([]byte(doc))
	if err == nil || !strings.Contains(err.Error(), "line 4, column 1: the <def> elements hold more than 2 mapping runs") {
		t.Fatalf("got %v", err)
	}
}
