package daemon

import (
	"crypto/x509"
	"strconv"
	"strings"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/nbd"
)

// admit applies a volume's access list to an NBD peer. A volume without a
// list admits every peer that got past the listeners (the socket policy,
// TLS), as before access lists existed. With a list, the peer needs a
// grant naming one of its identities: the verified client certificate's
// subject CN, a SAN DNS name or URI, or a unix peer's uid, primary or
// supplementary gid. It is served read-write if any matching grant is
// read-write and the volume is not read-only, else read-only. A grant
// never overrides the socket policy: a uid must also be able to connect.
func admit(e catalog.ExportSettings, p *nbd.Peer) (ok, readOnly bool) {
	if len(e.Access) == 0 {
		return true, e.ReadOnly
	}
	rw := false
	for _, g := range e.Access {
		if matches(g, p) {
			ok = true
			rw = rw || !g.ReadOnly
		}
	}
	return ok, e.ReadOnly || !rw
}

// matches reports whether a grant names one of the peer's identities.
func matches(g catalog.Grant, p *nbd.Peer) bool {
	if p == nil {
		return false
	}
	switch g.Kind {
	case catalog.GrantCN:
		return p.Cert != nil && p.Cert.Subject.CommonName == g.Value
	case catalog.GrantDNS:
		if p.Cert != nil {
			for _, n := range p.Cert.DNSNames {
				// DNS names compare case-insensitively (RFC 4343);
				// grants are stored in lower case.
				if strings.ToLower(n) == g.Value {
					return true
				}
			}
		}
	case catalog.GrantURI:
		if p.Cert != nil {
			for _, u := range p.Cert.URIs {
				if u.String() == g.Value {
					return true
				}
			}
		}
	case catalog.GrantUID, catalog.GrantGID:
		if p.Cred == nil {
			return false
		}
		id, err := strconv.ParseUint(g.Value, 10, 32)
		if err != nil {
			return false // the catalog keeps only decimal ids
		}
		if g.Kind == catalog.GrantUID {
			return p.Cred.UID == uint32(id)
		}
		return p.Cred.InGroup(uint32(id))
	}
	return false
}

// peerAttrs are the identities of a peer, for a log line.
func peerAttrs(p *nbd.Peer) []any {
	if p == nil {
		return nil
	}
	var a []any
	if p.Addr != nil {
		a = append(a, "remote", p.Addr.String())
	}
	if p.Cred != nil {
		a = append(a, "uid", p.Cred.UID, "gid", p.Cred.GID, "pid", p.Cred.PID)
	}
	if p.Cert != nil {
		a = append(a, "cert", p.Cert.Subject.String())
	}
	return a
}

// CertGranted reports whether a grant of list names the certificate's
// subject CN, a SAN DNS name or URI: receive --listen's --tls-allow is an
// access list for the sender.
func CertGranted(list []catalog.Grant, cert *x509.Certificate) bool {
	p := &nbd.Peer{Cert: cert}
	for _, g := range list {
		if matches(g, p) {
			return true
		}
	}
	return false
}
