package catalog

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestAccessListsAreCheckedAndStoredInOneOrder(t *testing.T) {
	for _, c := range []struct {
		name   string
		grants []Grant
		want   string // "" for valid
	}{
		{"certificate names and ids", []Grant{{Kind: GrantCN, Value: "a b"}, {Kind: GrantDNS, Value: "h.example"}, {Kind: GrantUID, Value: "0"}, {Kind: GrantGID, Value: "4294967295"}}, ""},
		{"an unknown kind", []Grant{{Kind: 9, Value: "x"}}, "unknown grant kind 9"},
		{"an empty value", []Grant{{Kind: GrantCN}}, "cn: empty value"},
		{"a uid that is a name", []Grant{{Kind: GrantUID, Value: "root"}}, `uid="root": want a decimal id`},
		{"a uid with a leading zero", []Grant{{Kind: GrantUID, Value: "01"}}, "want a decimal id"},
		{"a gid past 32 bits", []Grant{{Kind: GrantGID, Value: "4294967296"}}, "want a decimal id"},
		{"a DNS name in upper case", []Grant{{Kind: GrantDNS, Value: "H.example"}}, "lower case"},
		{"a control character", []Grant{{Kind: GrantCN, Value: "a\nb"}}, "control character"},
		{"an identity twice", []Grant{{Kind: GrantCN, Value: "x"}, {Kind: GrantCN, Value: "x", ReadOnly: true}}, "granted twice"},
		{"too long a value", []Grant{{Kind: GrantURI, Value: strings.Repeat("u", MaxGrantValueLen+1)}}, "at most"},
		{"too many grants", make([]Grant, MaxGrants+1), "grants, at most"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := validAccess(c.grants)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrInvalid with %q", err, c.want)
			}
		})
	}
}

func TestAVolumesAccessListRoundTripsThroughCreateAndUpdate(t *testing.T) {
	e := newEnv(t)
	grants := []Grant{{Kind: GrantUID, Value: "1000", ReadOnly: true}, {Kind: GrantCN, Value: "client"}}
	v, err := e.cat.CreateVolume(bg, e.pool, Spec{Name: "acl", Size: 1 << 20, Export: ExportSettings{Access: grants}})
	if err != nil {
		t.Fatal(err)
	}
	want := canonicalAccess(grants)
	if got, _ := e.cat.Get(bg, "acl"); !reflect.DeepEqual(got.Export.Access, want) || !reflect.DeepEqual(v.Export.Access, want) {
		t.Fatalf("stored %v, returned %v; want %v", got.Export.Access, v.Export.Access, want)
	}
	if _, err := e.cat.UpdateVolume(bg, "acl", Update{Export: &ExportSettings{Access: []Grant{{Kind: GrantUID, Value: "x"}}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an invalid update: %v", err)
	}
	if _, err := e.cat.UpdateVolume(bg, "acl", Update{Export: &ExportSettings{}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.cat.Get(bg, "acl"); got.Export.Access != nil {
		t.Fatalf("after clearing: %v", got.Export.Access)
	}
	if _, err := e.cat.CreateVolume(bg, e.pool, Spec{Name: "bad", Size: 1 << 20, Export: ExportSettings{Access: []Grant{{Kind: GrantGID}}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("create with an invalid grant: %v", err)
	}
}

func TestAccessRecordsDecodeStrictly(t *testing.T) {
	v := Volume{Name: "v", Size: 512, Export: ExportSettings{Access: []Grant{{Kind: GrantCN, Value: "a"}, {Kind: GrantCN, Value: "b"}}}}
	good := encodeVolume(&v)
	// The access list is the record's tail: kind, mode, value per grant.
	tail := len(good) - (1 + 2*(2+1+1))
	for name, b := range map[string][]byte{
		"a count of zero":    append(append([]byte{}, good[:tail]...), 0),
		"out of order":       append(append([]byte{}, good[:tail]...), 2, 1, 0, 1, 'b', 1, 0, 1, 'a'),
		"a mode of 2":        append(append([]byte{}, good[:tail]...), 1, 1, 2, 1, 'a'),
		"an unknown kind":    append(append([]byte{}, good[:tail]...), 1, 7, 0, 1, 'a'),
		"a count past limit": append(append([]byte{}, good[:tail]...), MaxGrants+1),
		"a truncated grant":  good[:len(good)-1],
	} {
		if _, err := decodeVolume(b); !errors.Is(err, ErrCorrupt) && err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if got, err := decodeVolume(good); err != nil || len(got.Export.Access) != 2 {
		t.Fatalf("the good record: %+v, %v", got, err)
	}
}

func TestParseGrantReadsTheCLISyntaxAndStringWritesIt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Grant
		out  string // String(), when it differs from in
		err  string
	}{
		{in: "cn=alice:rw", want: Grant{Kind: GrantCN, Value: "alice"}},
		{in: "uid=1000:ro", want: Grant{Kind: GrantUID, Value: "1000", ReadOnly: true}},
		{in: "gid=27", want: Grant{Kind: GrantGID, Value: "27"}, out: "gid=27:rw"},
		{in: "uri=spiffe://example.org/backup:ro", want: Grant{Kind: GrantURI, Value: "spiffe://example.org/backup", ReadOnly: true}},
		{in: "uri=urn:x:rw:ro", want: Grant{Kind: GrantURI, Value: "urn:x:rw", ReadOnly: true}},
		{in: "dns=h.example", want: Grant{Kind: GrantDNS, Value: "h.example"}, out: "dns=h.example:rw"},
		{in: "alice", err: "want KIND=VALUE"},
		{in: "user=alice", err: `kind "user"`},
		{in: "uid=alice:ro", err: "want a decimal id"},
		{in: "cn=:ro", err: "empty value"},
	} {
		g, err := ParseGrant(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseGrant(%q) = %v, %v; want an ErrInvalid with %q", tc.in, g, err, tc.err)
			}
			continue
		}
		if err != nil || g != tc.want {
			t.Errorf("ParseGrant(%q) = %+v, %v; want %+v", tc.in, g, err, tc.want)
			continue
		}
		out := tc.out
		if out == "" {
			out = tc.in
		}
		if g.String() != out {
			t.Errorf("ParseGrant(%q).String() = %q, want %q", tc.in, g.String(), out)
		}
		if back, err := ParseGrant(g.String()); err != nil || back != g {
			t.Errorf("ParseGrant(%q) = %+v, %v; want %+v back", g.String(), back, err, g)
		}
	}
}
