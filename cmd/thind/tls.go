package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/daemon"
)

// The TLS settings of every thind listener and dialer live here: NBD
// (serve --tls-*) and the send streams between daemons (send --to and
// receive --listen with --tls-*). Each is TLS 1.3 or nothing.

// loadTLS is serve's NBD TLS: the daemon's certificate, and with caFile
// client certificates required and verified against it.
func loadTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	c, err := loadIdentity(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if caFile != "" {
		if c.ClientCAs, err = loadCAs(caFile); err != nil {
			return nil, err
		}
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// loadIdentity is a TLS 1.3 configuration presenting one certificate.
func loadIdentity(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}, nil
}

// loadCAs reads a PEM bundle of CA certificates.
func loadCAs(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificates", caFile)
	}
	return pool, nil
}

// streamTLS are the --tls-* flags of send --to and receive --listen:
// mutual TLS, each side verifying the other's certificate against the
// CA, or (all empty) plain TCP.
type streamTLS struct {
	cert, key, ca string
	allow         []string // receive only: grants for the sender's certificate
}

func (s *streamTLS) enabled() bool { return s.cert != "" || s.key != "" || s.ca != "" }

func (s *streamTLS) load() (*tls.Config, error) {
	if s.cert == "" || s.key == "" || s.ca == "" {
		return nil, errors.New("stream TLS is mutual: give --tls-cert, --tls-key and --tls-ca together")
	}
	c, err := loadIdentity(s.cert, s.key)
	if err != nil {
		return nil, err
	}
	pool, err := loadCAs(s.ca)
	if err != nil {
		return nil, err
	}
	c.RootCAs, c.ClientCAs = pool, pool
	return c, nil
}

func addStreamTLSFlags(cmd *cobra.Command, s *streamTLS, side string) {
	f := cmd.Flags()
	f.StringVar(&s.cert, "tls-cert", "", "PEM certificate this side presents (mutual TLS 1.3 with --tls-key and --tls-ca)")
	f.StringVar(&s.key, "tls-key", "", "PEM key for --tls-cert")
	f.StringVar(&s.ca, "tls-ca", "", "PEM CA bundle the "+side+"'s certificate must be signed by")
}

// senderTLS is send --to's client side: it presents its certificate and
// verifies the receiver's (its DNS name or IP address must be the host
// of --to).
func (s *streamTLS) senderTLS(addr string) (*tls.Config, error) {
	c, err := s.load()
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--to %q: %w", addr, err)
	}
	c.ClientCAs, c.ServerName = nil, host
	return c, nil
}

// receiverTLS is receive --listen's server side: the sender must present
// a certificate signed by the CA and, with --tls-allow, named by one of
// the grants (an access list, as volume --allow takes, of certificate
// identities only).
func (s *streamTLS) receiverTLS() (*tls.Config, error) {
	var grants []catalog.Grant
	for _, a := range s.allow {
		g, err := catalog.ParseGrant(a)
		if err != nil {
			return nil, fmt.Errorf("--tls-allow: %w", err)
		}
		switch {
		case g.Kind != catalog.GrantCN && g.Kind != catalog.GrantDNS && g.Kind != catalog.GrantURI:
			return nil, fmt.Errorf("--tls-allow %q: a sender is known by its certificate: want cn=, dns= or uri=", a)
		case g.ReadOnly:
			return nil, fmt.Errorf("--tls-allow %q: a sender only writes: drop the :ro", a)
		}
		grants = append(grants, g)
	}
	if len(grants) > 0 && !s.enabled() {
		return nil, errors.New("--tls-allow needs --tls-cert, --tls-key and --tls-ca")
	}
	c, err := s.load()
	if err != nil {
		return nil, err
	}
	c.RootCAs, c.ClientAuth = nil, tls.RequireAndVerifyClientCert
	if len(grants) > 0 {
		// In the handshake, so that the sender is told (a TLS alert).
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 && daemon.CertGranted(grants, cs.PeerCertificates[0]) {
				return nil
			}
			return fmt.Errorf("%w: no --tls-allow grant names the sender's certificate", errNotAllowed)
		}
	}
	return c, nil
}

// errNotAllowed: a verified sender that --tls-allow does not name.
var errNotAllowed = errors.New("sender not allowed")
