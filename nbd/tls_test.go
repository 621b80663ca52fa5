package nbd

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/tooltest"
	"github.com/thind-storage/thind/nbd/internal/wire"
)

// testPKI is a throwaway CA with a server and a client certificate, also
// written as PEM files in the layout libnbd (GnuTLS) reads from a
// certificates directory: ca-cert.pem, client-cert.pem, client-key.pem.
type testPKI struct {
	pool     *x509.CertPool
	server   tls.Certificate
	client   tls.Certificate
	dir      string // CA and client certificate
	dirNoKey string // CA only: a client without a certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "thind test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)

	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) (tls.Certificate, []byte, []byte) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c, certPEM, keyPEM
	}
	p.server, _, _ = issue(2, "localhost", x509.ExtKeyUsageServerAuth)
	var clientCert, clientKey []byte
	p.client, clientCert, clientKey = issue(3, "thind-client", x509.ExtKeyUsageClientAuth)

	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	p.dir, p.dirNoKey = t.TempDir(), t.TempDir()
	for path, data := range map[string][]byte{
		filepath.Join(p.dir, "ca-cert.pem"):      caPEM,
		filepath.Join(p.dir, "client-cert.pem"):  clientCert,
		filepath.Join(p.dir, "client-key.pem"):   clientKey,
		filepath.Join(p.dirNoKey, "ca-cert.pem"): caPEM,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// serverConfig is the server's TLS configuration; requireClient turns on
// client-certificate authentication against the test CA.
func (p *testPKI) serverConfig(requireClient bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.server}}
	if requireClient {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = p.pool
	}
	return c
}

// clientConfig trusts the test CA and presents the client certificate if
// withCert.
func (p *testPKI) clientConfig(withCert bool) *tls.Config {
	c := &tls.Config{RootCAs: p.pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	if withCert {
		c.Certificates = []tls.Certificate{p.client}
	}
	return c
}

// startTLS sends NBD_OPT_STARTTLS and runs the client side of the TLS
// handshake; it returns the handshake error.
func (c *rawClient) startTLS(cfg *tls.Config) error {
	c.t.Helper()
	c.expectOption(wire.OptStartTLS, nil, wire.RepAck)
	tc := tls.Client(c.nc, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	// With TLS 1.3 the server checks the client's certificate after the
	// client's handshake has finished: a round trip shows the verdict.
	c.nc, c.br = tc, bufio.NewReader(tc)
	return nil
}

func TestStartTLSResetsNegotiatedState(t *testing.T) {
	pki := newTestPKI(t)
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{TLSMode: TLSOptional, TLSConfig: pki.serverConfig(false)}, e)
	c := dialUnix(t, ts)
	c.greet(wire.ClientFlagFixedNewstyle | wire.ClientFlagNoZeroes)
	c.expectOption(wire.OptStructuredReply, nil, wire.RepAck)
	c.expectOption(wire.OptStartTLS, []byte{1}, wire.RepErrInvalid)
	if err := c.startTLS(pki.clientConfig(false)); err != nil {
		t.Fatal(err)
	}
	if v := c.nc.(*tls.Conn).ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("TLS version %#x, want 1.3", v)
	}
	// Structured replies were negotiated in plain text: gone now.
	c.expectOption(wire.OptSetMetaContext, wire.MetaContextRequest{Export: "vol0", Queries: []string{wire.MetaContextBaseAlloc}}.Append(nil), wire.RepErrInvalid)
	c.expectOption(wire.OptStartTLS, nil, wire.RepErrInvalid)
	c.negotiateAfterGreeting("vol0")
	c.pwrite([]byte("secret"), 0)
	if got := c.pread(0, 6); string(got) != "secret" {
		t.Fatalf("read %q over TLS", got)
	}
	c.disc()
	c.expectClosed()
}

// negotiateAfterGreeting is negotiate without the greeting.
func (c *rawClient) negotiateAfterGreeting(export string) {
	c.t.Helper()
	c.expectOption(wire.OptStructuredReply, nil, wire.RepAck)
	c.structured = true
	c.goExport(export)
}

func TestForcedTLS(t *testing.T) {
	pki := newTestPKI(t)
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{TLSMode: TLSRequired, TLSConfig: pki.serverConfig(false)}, e)

	c := dialUnix(t, ts)
	c.greet(wire.ClientFlagFixedNewstyle)
	for _, opt := range []uint32{wire.OptList, wire.OptStructuredReply, wire.OptExtendedHeaders, 99} {
		c.expectOption(opt, nil, wire.RepErrTLSReqd)
	}
	for _, opt := range []uint32{wire.OptInfo, wire.OptGo} {
		c.expectOption(opt, wire.InfoRequest{Name: "vol0"}.Append(nil), wire.RepErrTLSReqd)
	}
	if err := c.startTLS(pki.clientConfig(false)); err != nil {
		t.Fatal(err)
	}
	if rs := c.expectOption(wire.OptList, nil, wire.RepAck); len(rs) != 2 {
		t.Fatalf("LIST over TLS: %d replies", len(rs))
	}
	c.negotiateAfterGreeting("vol0")
	c.pread(0, 512)

	// EXPORT_NAME has no error reply: before TLS it closes.
	c2 := dialUnix(t, ts)
	c2.greet(wire.ClientFlagFixedNewstyle)
	c2.sendOption(wire.OptExportName, []byte("vol0"))
	c2.expectClosed()

	// TLS needs fixed newstyle.
	c3 := dialUnix(t, ts)
	c3.greet(0)
	c3.expectOption(wire.OptStartTLS, nil, wire.RepErrPolicy)
	if got := ts.Stats().HandshakeFailures[FailureTLSRequired]; got != 1 {
		t.Errorf("tls_required failures %d", got)
	}
}

func TestSelectiveTLS(t *testing.T) {
	pki := newTestPKI(t)
	pub, _ := memExport("public", 1<<20)
	sec, _ := memExport("secret", 1<<20)
	sec.TLSRequired = true
	ts := startServer(t, Options{TLSMode: TLSOptional, TLSConfig: pki.serverConfig(false)}, pub, sec)
	names := func(c *rawClient) (out []string) {
		for _, r := range c.expectOption(wire.OptList, nil, wire.RepAck) {
			if r.typ == wire.RepServer {
				out = append(out, string(r.data[4:4+int(r.data[3])]))
			}
		}
		return out
	}
	c := dialUnix(t, ts)
	c.greet(wire.ClientFlagFixedNewstyle)
	if got := strings.Join(names(c), ","); got != "public" {
		t.Errorf("plain LIST shows %q", got)
	}
	c.expectOption(wire.OptGo, wire.InfoRequest{Name: "secret"}.Append(nil), wire.RepErrTLSReqd)
	c.expectOption(wire.OptListMetaContext, wire.MetaContextRequest{Export: "secret"}.Append(nil), wire.RepErrTLSReqd)
	if err := c.startTLS(pki.clientConfig(false)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(c), ","); got != "public,secret" {
		t.Errorf("LIST over TLS shows %q", got)
	}
	c.negotiateAfterGreeting("secret")
	c.pread(0, 512)

	plain := dialUnix(t, ts)
	plain.negotiate("public", true, false, false)
	plain.pread(0, 512)
}

func TestClientCertificateAuthentication(t *testing.T) {
	pki := newTestPKI(t)
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{TLSMode: TLSRequired, TLSConfig: pki.serverConfig(true)}, e)

	c := dialUnix(t, ts)
	c.greet(wire.ClientFlagFixedNewstyle)
	if err := c.startTLS(pki.clientConfig(true)); err != nil {
		t.Fatal(err)
	}
	c.negotiateAfterGreeting("vol0")
	c.pread(0, 512)

	// Without a certificate the server fails the handshake; in TLS 1.3
	// the client learns it on its first read.
	c2 := dialUnix(t, ts)
	c2.greet(wire.ClientFlagFixedNewstyle)
	if err := c2.startTLS(pki.clientConfig(false)); err == nil {
		// The write may already fail; the read must.
		c2.nc.Write(wire.AppendOptionHeader(nil, wire.OptionHeader{Option: wire.OptList}))
		if _, err := c2.br.ReadByte(); err == nil {
			t.Fatal("server answered a client without a certificate")
		}
	}
	ts.stop(t)
	if got := ts.Stats().HandshakeFailures[FailureTLS]; got != 1 {
		t.Errorf("tls failures %d, want 1", got)
	}
}

func TestTLSWithLibnbd(t *testing.T) {
	pki := newTestPKI(t)
	e, _ := memExport("vol0", 4<<20)
	ts := startServer(t, Options{TLSMode: TLSRequired, TLSConfig: pki.serverConfig(true)}, e)

	for _, uri := range []string{
		"nbds+unix:///vol0?socket=" + ts.sock + "&tls-certificates=" + pki.dir,
		"nbds://" + ts.tcp + "/vol0?tls-certificates=" + pki.dir,
	} {
		out := tooltest.Run(t, "nbdinfo", pkgLibnbd, uri)
		if !strings.Contains(out, "with TLS") || !strings.Contains(out, "export-size: 4194304") {
			t.Errorf("nbdinfo %s:\n%s", uri, out)
		}
	}
	script := `
import sys
import nbd
sock, good, bad = sys.argv[1:4]
h = nbd.NBD()
h.set_tls(nbd.TLS_REQUIRE)
h.set_tls_certificates(good)
h.connect_uri("nbd+unix:///vol0?socket=" + sock)
assert h.get_tls_negotiated()
h.pwrite(b"over tls" * 512, 0)
assert h.pread(4096, 0) == b"over tls" * 512
h.shutdown()

# Without TLS the server refuses (FORCEDTLS).
h = nbd.NBD()
h.set_tls(nbd.TLS_DISABLE)
try:
    h.connect_uri("nbd+unix:///vol0?socket=" + sock)
    raise AssertionError("connected without TLS")
except nbd.Error as e:
    print("plain refused:", e)

# Without a client certificate the TLS handshake fails.
h = nbd.NBD()
h.set_tls(nbd.TLS_REQUIRE)
h.set_tls_certificates(bad)
try:
    h.connect_uri("nbd+unix:///vol0?socket=" + sock)
    raise AssertionError("connected without a client certificate")
except nbd.Error as e:
    print("no client certificate refused:", e)
print("all assertions passed")
`
	out := tooltest.RunPython(t, script, ts.sock, pki.dir, pki.dirNoKey)
	if !strings.Contains(out, "all assertions passed") {
		t.Fatalf("script:\n%s", out)
	}
	t.Log(out)
}

func TestTLSConfigurationIsChecked(t *testing.T) {
	pki := newTestPKI(t)
	ex := NewMapExports()
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"a TLS mode without a configuration", Options{TLSMode: TLSRequired}},
		{"a configuration without a certificate", Options{TLSMode: TLSOptional, TLSConfig: &tls.Config{}}},
		{"an unknown mode", Options{TLSMode: 7, TLSConfig: pki.serverConfig(false)}},
	} {
		if _, err := NewServer(ex, tc.opts); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	s, err := NewServer(ex, Options{TLSMode: TLSOptional, TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}})
	if err != nil || s.tls.MinVersion != tls.VersionTLS13 {
		t.Fatalf("server TLS config: %v, min version %#x", err, s.tls.MinVersion)
	}
}
