package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"net/url"
	"os"
	"testing"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/nbd"
)

func grants(t *testing.T, in ...string) []catalog.Grant {
	t.Helper()
	out, err := parseGrants(in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAccessListsAdmitTheNamedIdentitiesOnly(t *testing.T) {
	spiffe, _ := url.Parse("spiffe://example.org/backup")
	alice := &nbd.Peer{TLS: true, Cert: &x509.Certificate{Subject: pkix.Name{CommonName: "alice"}, DNSNames: []string{"Host.Example"}, URIs: []*url.URL{spiffe}}}
	uid1000 := &nbd.Peer{Cred: &nbd.UnixCred{UID: 1000, GID: 1000, Groups: []uint32{27}}}
	tcp := &nbd.Peer{}
	for _, c := range []struct {
		name       string
		access     []string
		readOnly   bool
		peer       *nbd.Peer
		ok, wantRO bool
	}{
		{"no list admits anyone", nil, false, tcp, true, false},
		{"no list keeps the volume read-only", nil, true, tcp, true, true},
		{"a certificate's CN", []string{"cn=alice:rw"}, false, alice, true, false},
		{"another CN is refused", []string{"cn=bob"}, false, alice, false, true},
		{"a SAN DNS name, in any case", []string{"dns=host.example:ro"}, false, alice, true, true},
		{"a SAN URI", []string{"uri=spiffe://example.org/backup"}, false, alice, true, false},
		{"a uid", []string{"uid=1000:ro"}, false, uid1000, true, true},
		{"a supplementary gid", []string{"gid=27"}, false, uid1000, true, false},
		{"a uid grant does not match a certificate", []string{"uid=1000"}, false, alice, false, true},
		{"a CN grant does not match a unix peer", []string{"cn=alice"}, false, uid1000, false, true},
		{"a plain TCP client has no identity", []string{"cn=alice", "uid=0"}, false, tcp, false, true},
		{"read-write wins over read-only", []string{"uid=1000:ro", "gid=1000:rw"}, false, uid1000, true, false},
		{"a read-only volume stays read-only", []string{"uid=1000:rw"}, true, uid1000, true, true},
		{"no peer at all", []string{"uid=0"}, false, nil, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := catalog.ExportSettings{ReadOnly: c.readOnly, Access: grants(t, c.access...)}
			ok, ro := admit(e, c.peer)
			if ok != c.ok || (ok && ro != c.wantRO) {
				t.Errorf("admit(%v, read-only %v) = %v, read-only %v; want %v, %v", c.access, c.readOnly, ok, ro, c.ok, c.wantRO)
			}
		})
	}
}

func TestTheSocketPolicyFollowsTheFileModeAndGuardsChanges(t *testing.T) {
	control := uint32(50)
	p := &socketPolicy{mode: 0o660, uid: 1000, gid: 100, control: &control}
	root := &nbd.UnixCred{UID: 0, GID: 0}
	owner := &nbd.UnixCred{UID: 1000, GID: 1000}
	member := &nbd.UnixCred{UID: 2000, GID: 2000, Groups: []uint32{100}}
	operator := &nbd.UnixCred{UID: 3000, GID: 100, Groups: []uint32{50}}
	other := &nbd.UnixCred{UID: 65534, GID: 65534}
	for _, c := range []struct {
		name    string
		mode    uint32
		cred    *nbd.UnixCred
		connect bool
		change  bool
	}{
		{"root always", 0o600, root, true, true},
		{"the owner with owner write permission", 0o600, owner, true, true},
		{"the owner without it", 0o060, owner, false, true},
		{"a group member with group write permission", 0o660, member, true, false},
		{"a group member without it", 0o600, member, false, false},
		{"the control group", 0o660, operator, true, true},
		{"another user under 0660", 0o660, other, false, false},
		{"another user under 0666", 0o666, other, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.mode = os.FileMode(c.mode)
			if got := p.mayConnect(c.cred); got != c.connect {
				t.Errorf("mode %#o uid %d: mayConnect %v, want %v", c.mode, c.cred.UID, got, c.connect)
			}
			if err := p.acceptPeer(&nbd.Peer{Cred: c.cred}); (err == nil) != c.connect {
				t.Errorf("mode %#o uid %d: acceptPeer %v, want admitted %v", c.mode, c.cred.UID, err, c.connect)
			}
			if err := p.controlAllowed(c.cred, http.MethodGet); (err == nil) != c.connect {
				t.Errorf("mode %#o uid %d: GET %v, want allowed %v", c.mode, c.cred.UID, err, c.connect)
			}
			wantChange := c.connect && c.change
			if err := p.controlAllowed(c.cred, http.MethodPost); (err == nil) != wantChange {
				t.Errorf("mode %#o uid %d: POST %v, want allowed %v", c.mode, c.cred.UID, err, wantChange)
			}
		})
	}
	if err := p.acceptPeer(&nbd.Peer{}); err != nil {
		t.Errorf("a TCP peer (no credentials) is refused by the socket policy: %v", err)
	}
	if err := p.controlAllowed(nil, http.MethodGet); err == nil {
		t.Error("a control peer of unknown credentials may read")
	}
}

func TestTCPIsServedOnlyWhenAskedFor(t *testing.T) {
	c := Config{DataDir: "/pool"}
	c.setDefaults()
	if len(c.Listen) != 1 || c.Listen[0] != "unix:/pool/nbd.sock" {
		t.Errorf("default listeners %q, want the unix socket only", c.Listen)
	}
	if c.SocketMode != 0o660 {
		t.Errorf("default socket mode %#o, want 0660", c.SocketMode)
	}
	for addr, want := range map[string]bool{"127.0.0.1:10809": true, "[::1]:1": true, "localhost:1": true, ":10809": false, "0.0.0.0:1": false, "192.0.2.1:1": false} {
		if Loopback(addr) != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, !want, want)
		}
	}
}

func TestTLSSettingsThatWouldTrustUnverifiedClientsAreRefused(t *testing.T) {
	pool := x509.NewCertPool()
	for _, c := range []struct {
		name     string
		cfg      Config
		refusing bool
	}{
		{"no TLS", Config{}, false},
		{"TLS without client certificates", Config{TLS: &tls.Config{}}, false},
		{"a client CA with TLS required", Config{TLS: &tls.Config{ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}, TLSRequired: true}, false},
		{"a client CA without TLS required", Config{TLS: &tls.Config{ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}}, true},
		{"certificates asked for but never verified", Config{TLS: &tls.Config{ClientAuth: tls.RequireAnyClientCert}, TLSRequired: true}, true},
		{"TLS required without a configuration", Config{TLSRequired: true}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := checkTLS(&c.cfg)
			if (err != nil) != c.refusing {
				t.Errorf("checkTLS = %v, want refused %v", err, c.refusing)
			}
		})
	}
	if err := checkTLS(&Config{TLS: &tls.Config{ClientCAs: pool}}); !errors.Is(err, ErrClientCAWithoutTLSRequired) {
		t.Errorf("a client CA without TLS required: %v, want ErrClientCAWithoutTLSRequired", err)
	}
}
