package catalog

import (
	"bytes"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thind-storage/thind/thinmeta"
)

// sampleVolumes are records that exercise every field and limit; they
// also seed the fuzz corpus (see fuzz_test.go).
func sampleVolumes() []Volume {
	long := map[string]string{}
	for i := range MaxLabels {
		long[strings.Repeat("k", i+1)] = strings.Repeat("\u2603", MaxLabelValueLen/3)
	}
	return []Volume{
		{Name: "a", DevID: 0, Size: 0, Created: time.Unix(0, 0).UTC()},
		{Name: "default", DevID: 1, Size: 1 << 30, Created: time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC),
			Labels: map[string]string{"env": "prod", "example.com/team": "storage"}, Description: "the daemon's first volume",
			Export: ExportSettings{ReadOnly: false, RequireTLS: true, Access: []Grant{
				{Kind: GrantCN, Value: "backup client"}, {Kind: GrantURI, Value: "spiffe://example.com/vm", ReadOnly: true},
				{Kind: GrantUID, Value: "1000"}}}},
		{Name: "snap.1", DevID: thinmeta.MaxDevID, Size: MaxSize, Created: time.Unix(-1, 0).UTC(),
			Origin: &Origin{Name: "default", DevID: 1}, Export: ExportSettings{ReadOnly: true}},
		{Name: strings.Repeat("z", MaxNameLen), DevID: 1 << 20, Size: 512, Created: time.Unix(0, 1<<62).UTC(),
			Origin: &Origin{Name: strings.Repeat("y", MaxNameLen), DevID: 0}, Labels: long,
			Description: strings.Repeat("d\n", MaxDescriptionLen/2), Export: ExportSettings{Access: manyGrants()}},
	}
}

// manyGrants is an access list at its limits, in canonical order.
func manyGrants() []Grant {
	var g []Grant
	for i := range MaxGrants - 1 {
		g = append(g, Grant{Kind: GrantGID, Value: strconv.Itoa(i), ReadOnly: i%2 == 0})
	}
	slices.SortFunc(g, compareGrants)
	return append([]Grant{{Kind: GrantCN, Value: strings.Repeat("\u2603", MaxGrantValueLen/3)}}, g...)
}

func TestVolumeRecordRoundTrips(t *testing.T) {
	for _, v := range sampleVolumes() {
		b := encodeVolume(&v)
		got, err := decodeVolume(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", v.Name, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("%s: decoded %+v, want %+v", v.Name, got, v)
		}
		if again := encodeVolume(&got); !bytes.Equal(again, b) {
			t.Fatalf("%s: re-encoded %x, want %x", v.Name, again, b)
		}
	}
}

func TestVolumeRecordRejectsCorruption(t *testing.T) {
	v := sampleVolumes()[1]
	good := encodeVolume(&v)
	edit := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"an empty value", nil},
		{"a newer version", edit(func(b []byte) []byte { b[0] = 2; return b })},
		{"an unknown flag", edit(func(b []byte) []byte { b[1] |= 0x80; return b })},
		{"a trailing byte", append(append([]byte(nil), good...), 0)},
		{"a name that is not a volume name", encodeVolume(&Volume{Name: "Bad/Name"})},
		{"a name past its limit", encodeVolume(&Volume{Name: strings.Repeat("n", MaxNameLen+1)})},
		{"a device id past 24 bits", encodeVolume(&Volume{Name: "a", DevID: thinmeta.MaxDevID + 1})},
		{"a size of part of a sector", encodeVolume(&Volume{Name: "a", Size: 513})},
		{"an invalid origin name", encodeVolume(&Volume{Name: "a", Origin: &Origin{Name: ""}})},
		{"a description with control bytes", encodeVolume(&Volume{Name: "a", Description: "\x1b[2J"})},
		{"an invalid label", encodeVolume(&Volume{Name: "a", Labels: map[string]string{"K": "v"}})},
		{"a non-minimal varint", []byte{1, 0, 0x81, 0x00, 'a'}},
		{"a length past the end", []byte{1, 0, 5, 'a'}},
	}
	// Labels out of order and duplicated: build them by hand.
	unsorted := []byte{1, 0}
	unsorted = appendString(unsorted, "a")
	unsorted = append(unsorted, 1, 0, 0) // dev id, size, created
	unsorted = appendString(unsorted, "")
	unsorted = append(unsorted, 2)
	dup := append([]byte(nil), unsorted...)
	for _, kv := range []string{"b", "1", "a", "2"} {
		unsorted = appendString(unsorted, kv)
	}
	for _, kv := range []string{"a", "1", "a", "2"} {
		dup = appendString(dup, kv)
	}
	tests = append(tests, struct {
		name string
		b    []byte
	}{"labels out of order", unsorted}, struct {
		name string
		b    []byte
	}{"a duplicated label", dup})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := decodeVolume(tt.b); err == nil {
				t.Fatalf("decoded %x as %+v, want an error", tt.b, v)
			}
		})
	}
	t.Run("every truncation", func(t *testing.T) {
		for n := range len(good) {
			if _, err := decodeVolume(good[:n]); err == nil {
				t.Fatalf("decoded the first %d of %d bytes", n, len(good))
			}
		}
	})
}

func TestIntentRecordRoundTrips(t *testing.T) {
	for i, v := range sampleVolumes() {
		op := []Op{OpCreate, OpDelete, OpSnapshot, OpResize}[i%4]
		if op == OpCreate {
			v.Origin = nil
		}
		in := Intent{Op: op, TxID: uint64(i) + 1, Volume: v}
		b := encodeIntent(&in)
		got, err := decodeIntent(b)
		if err != nil {
			t.Fatalf("%v: decode: %v", op, err)
		}
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("decoded %+v, want %+v", got, in)
		}
	}
}

func TestIntentRecordRejectsCorruption(t *testing.T) {
	v := Volume{Name: "a", DevID: 1, Size: 512}
	snap := v
	snap.Origin = &Origin{Name: "b", DevID: 2}
	tests := []struct {
		name string
		in   Intent
	}{
		{"an unknown op", Intent{Op: 9, TxID: 1, Volume: v}},
		{"op zero", Intent{Op: 0, TxID: 1, Volume: v}},
		{"transaction id zero", Intent{Op: OpCreate, TxID: 0, Volume: v}},
		{"a snapshot without an origin", Intent{Op: OpSnapshot, TxID: 1, Volume: v}},
		{"a create with an origin", Intent{Op: OpCreate, TxID: 1, Volume: snap}},
		{"a corrupt volume", Intent{Op: OpCreate, TxID: 1, Volume: Volume{Name: "A"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if in, err := decodeIntent(encodeIntent(&tt.in)); err == nil {
				t.Fatalf("decoded %+v, want an error", in)
			}
		})
	}
}

func TestStateAndIndexRecords(t *testing.T) {
	s := state{txID: 1<<64 - 1, nextID: thinmeta.MaxDevID + 1}
	got, err := decodeState(encodeState(&s))
	if err != nil || got != s {
		t.Fatalf("state round trip: %+v, %v", got, err)
	}
	if _, err := decodeState(encodeState(&state{nextID: thinmeta.MaxDevID + 2})); err == nil {
		t.Fatal("decoded a next id past the last device id")
	}
	if _, err := decodeState(append(encodeState(&s), 0)); err == nil {
		t.Fatal("decoded a state with a trailing byte")
	}
	if name, err := decodeIDValue(encodeIDValue("vol")); err != nil || name != "vol" {
		t.Fatalf("id value round trip: %q, %v", name, err)
	}
	for _, b := range [][]byte{nil, {2, 'a'}, {1}, {1, '/'}} {
		if name, err := decodeIDValue(b); err == nil {
			t.Fatalf("decoded id value %x as %q", b, name)
		}
	}
}

func TestKeys(t *testing.T) {
	if got := string(idKey(0xabc)); got != "v1/id/00000abc" {
		t.Fatalf("idKey = %q", got)
	}
	if id, err := parseIDKey(idKey(thinmeta.MaxDevID)); err != nil || id != thinmeta.MaxDevID {
		t.Fatalf("parseIDKey = %d, %v", id, err)
	}
	if got := string(intentKey(7)); got != "v1/intent/0000000000000007" {
		t.Fatalf("intentKey = %q", got)
	}
	for _, k := range []string{"v1/id/1", "v1/id/0000000G", "v1/id/0000000A", "v1/id/01000000"} {
		if id, err := parseIDKey([]byte(k)); err == nil {
			t.Errorf("parseIDKey(%q) = %d, want an error", k, id)
		}
	}
	if string(upperBound(prefixVol)) != "v1/vol0" {
		t.Fatalf("upperBound(%q) = %q", prefixVol, upperBound(prefixVol))
	}
}
