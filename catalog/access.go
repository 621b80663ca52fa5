package catalog

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// GrantKind says what a grant matches.
type GrantKind byte

// The identities a grant can name: a TLS client certificate's subject
// common name, DNS name or URI (subject alternative names), or a unix
// socket client's user or group id.
const (
	GrantCN  GrantKind = 1
	GrantDNS GrantKind = 2
	GrantURI GrantKind = 3
	GrantUID GrantKind = 4
	GrantGID GrantKind = 5
)

var grantKindNames = map[GrantKind]string{GrantCN: "cn", GrantDNS: "dns", GrantURI: "uri", GrantUID: "uid", GrantGID: "gid"}

func (k GrantKind) String() string {
	if n, ok := grantKindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("GrantKind(%d)", byte(k))
}

// ParseGrantKind is String's inverse.
func ParseGrantKind(s string) (GrantKind, error) {
	for k, n := range grantKindNames {
		if n == s {
			return k, nil
		}
	}
	return 0, invalid("access", "kind %q: want cn, dns, uri, uid or gid", s)
}

// Grant lets the clients with one identity open a volume.
type Grant struct {
	Kind GrantKind
	// Value is the name (cn, dns, uri) or the decimal id (uid, gid).
	Value string
	// ReadOnly serves the volume read-only to them.
	ReadOnly bool
}

// String gives the grant in the syntax ParseGrant reads: KIND=VALUE:MODE.
func (g Grant) String() string {
	mode := "rw"
	if g.ReadOnly {
		mode = "ro"
	}
	return fmt.Sprintf("%s=%s:%s", g.Kind, g.Value, mode)
}

// ParseGrant reads a grant as the CLI and the control API take it:
// KIND=VALUE, optionally followed by :rw (the default) or :ro, such as
// cn=alice:rw, uid=1000:ro or uri=spiffe://example.org/backup. Only a
// last ":ro" or ":rw" is a mode, so values may hold colons; a value that
// itself ends in one needs the mode written out. The grant is validated.
func ParseGrant(s string) (Grant, error) {
	kind, value, ok := strings.Cut(s, "=")
	if !ok {
		return Grant{}, invalid("access", "grant %q: want KIND=VALUE[:ro|:rw], KIND one of cn, dns, uri, uid, gid", s)
	}
	k, err := ParseGrantKind(kind)
	if err != nil {
		return Grant{}, err
	}
	g := Grant{Kind: k, Value: value}
	if v, ok := strings.CutSuffix(value, ":ro"); ok {
		g.Value, g.ReadOnly = v, true
	} else if v, ok := strings.CutSuffix(value, ":rw"); ok {
		g.Value = v
	}
	if err := validGrant(g); err != nil {
		return Grant{}, err
	}
	return g, nil
}

// Limits on an access list.
const (
	MaxGrants        = 64
	MaxGrantValueLen = 1024
)

// validGrant checks one grant.
func validGrant(g Grant) error {
	if _, ok := grantKindNames[g.Kind]; !ok {
		return invalid("access", "unknown grant kind %d", byte(g.Kind))
	}
	switch {
	case g.Value == "":
		return invalid("access", "%s: empty value", g.Kind)
	case len(g.Value) > MaxGrantValueLen:
		return invalid("access", "%s: %d bytes, at most %d", g.Kind, len(g.Value), MaxGrantValueLen)
	}
	switch g.Kind {
	case GrantUID, GrantGID:
		n, err := strconv.ParseUint(g.Value, 10, 32)
		if err != nil || strconv.FormatUint(n, 10) != g.Value {
			return invalid("access", "%s=%q: want a decimal id", g.Kind, g.Value)
		}
	case GrantDNS:
		if g.Value != strings.ToLower(g.Value) {
			return invalid("access", "dns=%q: DNS names are matched in lower case", g.Value)
		}
	}
	if err := printable(g.Value, false); err != nil {
		return invalid("access", "%s=%q: %v", g.Kind, g.Value, err)
	}
	return nil
}

// validAccess checks an access list: valid grants, no identity twice.
func validAccess(grants []Grant) error {
	if len(grants) > MaxGrants {
		return invalid("access", "%d grants, at most %d", len(grants), MaxGrants)
	}
	for _, g := range grants {
		if err := validGrant(g); err != nil {
			return err
		}
	}
	sorted := canonicalAccess(grants)
	for i := 1; i < len(sorted); i++ {
		if compareGrants(sorted[i-1], sorted[i]) == 0 {
			return invalid("access", "%s=%s is granted twice", sorted[i].Kind, sorted[i].Value)
		}
	}
	return nil
}

func compareGrants(a, b Grant) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), strings.Compare(a.Value, b.Value))
}

// canonicalAccess is a sorted copy of grants, nil for none, as decoding
// gives.
func canonicalAccess(grants []Grant) []Grant {
	if len(grants) == 0 {
		return nil
	}
	out := slices.Clone(grants)
	slices.SortFunc(out, compareGrants)
	return out
}
