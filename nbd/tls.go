package nbd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// TLSMode is the server's TLS policy, fixed for the life of a connection.
type TLSMode int

const (
	// TLSOff (NOTLS) refuses STARTTLS with NBD_REP_ERR_POLICY. Exports
	// marked TLSRequired are then unreachable. The default, for unix
	// sockets and loopback.
	TLSOff TLSMode = iota
	// TLSOptional (SELECTIVETLS) offers STARTTLS; only exports marked
	// TLSRequired demand it (NBD_REP_ERR_TLS_REQD, and they are left out
	// of plain-text listings).
	TLSOptional
	// TLSRequired (FORCEDTLS) answers every option except STARTTLS and
	// ABORT with NBD_REP_ERR_TLS_REQD until TLS is up, and closes the
	// connection on NBD_OPT_EXPORT_NAME.
	TLSRequired
)

func (m TLSMode) String() string {
	switch m {
	case TLSOff:
		return "off"
	case TLSOptional:
		return "optional"
	case TLSRequired:
		return "required"
	}
	return fmt.Sprintf("TLSMode(%d)", int(m))
}

// serverTLSConfig checks cfg against mode and returns the configuration the
// server uses: a clone with TLS 1.3 as the minimum.
func serverTLSConfig(mode TLSMode, cfg *tls.Config) (*tls.Config, error) {
	switch mode {
	case TLSOff:
		return nil, nil
	case TLSOptional, TLSRequired:
	default:
		return nil, fmt.Errorf("nbd: unknown TLS mode %d", int(mode))
	}
	if cfg == nil {
		return nil, fmt.Errorf("nbd: TLS mode %s needs a TLS configuration", mode)
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return nil, errors.New("nbd: TLS configuration has no server certificate")
	}
	c := cfg.Clone()
	if c.MinVersion < tls.VersionTLS13 {
		c.MinVersion = tls.VersionTLS13
	}
	verifyWithoutCAHints(c)
	return c, nil
}

// verifyWithoutCAHints moves client certificate verification from the
// handshake into VerifyConnection, so that the CertificateRequest carries
// no certificate_authorities list.
//
// GnuTLS 3.7 and 3.8 clients (libnbd, qemu, nbd-client) send no
// certificate when a TLS 1.3 server lists CAs but offers RSA only as
// RSA-PSS: to pick a certificate they turn each offered signature scheme
// into a key type, and take rsa_pss_rsae_* as an RSA-PSS key, not the
// plain RSA key of a certtool-made certificate, so no certificate
// matches the CA list (lib/tls13/certificate_request.c, fixed in GnuTLS
// 3.8.13 by taking the scheme's certificate key type). Go's TLS 1.3
// CertificateRequest offers RSA-PSS only (PKCS #1 v1.5 may not sign a
// TLS 1.3 handshake); GnuTLS servers also offer rsa_pkcs1_*, which is why
// nbdkit and qemu-nbd see those clients' certificates. Without a CA list,
// a GnuTLS client that has one certificate sends it. The chain is then
// verified here exactly as crypto/tls would: against the same roots, for
// client authentication.
func verifyWithoutCAHints(c *tls.Config) {
	if c.ClientCAs == nil || c.ClientAuth < tls.VerifyClientCertIfGiven {
		return
	}
	roots := c.ClientCAs
	c.ClientCAs = nil
	if c.ClientAuth == tls.RequireAndVerifyClientCert {
		c.ClientAuth = tls.RequireAnyClientCert
	} else {
		c.ClientAuth = tls.RequestClientCert
	}
	now := c.Time
	next := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 {
			opts := x509.VerifyOptions{
				Roots:         roots,
				Intermediates: x509.NewCertPool(),
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			}
			if now != nil {
				opts.CurrentTime = now()
			}
			for _, ic := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
				return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
			}
		}
		if next != nil {
			return next(cs)
		}
		return nil
	}
}

// startTLS runs the server side of the TLS handshake on the raw connection
// after NBD_OPT_STARTTLS was acknowledged, and switches the session's
// reader and writer to it. Any byte the client sent after the option and
// before the handshake would be a protocol violation (it must wait for the
// ACK), and would be lost under the TLS layer, so it is refused.
func (s *session) startTLS(ctx context.Context) error {
	if s.c.br.Buffered() > 0 {
		return hsFail(FailureProtocol, errors.New("data after STARTTLS before the TLS handshake"))
	}
	tc := tls.Server(s.c.raw, s.c.srv.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		return hsFail(FailureTLS, fmt.Errorf("TLS handshake: %w", err))
	}
	s.c.nc = tc
	s.c.br.Reset(tc)
	st := tc.ConnectionState()
	s.c.peer.TLS = true
	if len(st.PeerCertificates) > 0 {
		s.c.peer.Cert = st.PeerCertificates[0]
	}
	attrs := []any{"version", tls.VersionName(st.Version)}
	if len(st.PeerCertificates) > 0 {
		attrs = append(attrs, "client", st.PeerCertificates[0].Subject.String())
	}
	s.c.log.Debug("nbd: TLS established", attrs...)
	return nil
}
