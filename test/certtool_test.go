package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thind-storage/thind/internal/tooltest"
)

const pkgGnutls = "gnutls-bin"

// certtoolPKI is an RSA CA, a server certificate and client certificate
// directories made with GnuTLS's certtool, as the NBD and qemu
// documentation describe: each client directory holds ca-cert.pem,
// client-cert.pem and client-key.pem, the names libnbd's
// tls-certificates= and qemu's tls-creds-x509 dir= look for.
type certtoolPKI struct {
	dir                   string
	caCert, caKey         string
	serverCert, serverKey string
	certtool              string
	t                     testing.TB
}

func newCerttoolPKI(t *testing.T) *certtoolPKI {
	t.Helper()
	dir := t.TempDir()
	p := &certtoolPKI{t: t, dir: dir, certtool: tooltest.Need(t, "certtool", pkgGnutls),
		caCert: filepath.Join(dir, "ca-cert.pem"), caKey: filepath.Join(dir, "ca-key.pem"),
		serverCert: filepath.Join(dir, "server-cert.pem"), serverKey: filepath.Join(dir, "server-key.pem")}
	p.key(p.caKey)
	p.run("ca.info", "cn = thind test CA\nca\ncert_signing_key\nexpiration_days = 2\n",
		"--generate-self-signed", "--load-privkey", p.caKey, "--outfile", p.caCert)
	p.key(p.serverKey)
	p.run("server.info", "organization = thind test\ncn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\n"+
		"tls_www_server\nencryption_key\nsigning_key\nexpiration_days = 2\n",
		"--generate-certificate", "--load-ca-certificate", p.caCert, "--load-ca-privkey", p.caKey,
		"--load-privkey", p.serverKey, "--outfile", p.serverCert)
	return p
}

// client makes a directory with a client certificate for cn ("TLS Web
// Client Authentication") signed by the CA.
func (p *certtoolPKI) client(t *testing.T, cn string) string {
	t.Helper()
	dir := filepath.Join(p.dir, "client-"+cn)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(p.caCert)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca-cert.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "client-key.pem")
	p.key(key)
	p.run(cn+".info", fmt.Sprintf("country = GB\norganization = thind test\ncn = %s\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 2\n", cn),
		"--generate-certificate", "--load-ca-certificate", p.caCert, "--load-ca-privkey", p.caKey,
		"--load-privkey", key, "--outfile", filepath.Join(dir, "client-cert.pem"))
	info := p.run("", "", "--certificate-info", "--infile", filepath.Join(dir, "client-cert.pem"))
	for _, want := range []string{"Subject Public Key Algorithm: RSA", "TLS WWW Client", "CN=" + cn} {
		if !strings.Contains(info, want) {
			p.fatalf("the client certificate for %s lacks %q:\n%s", cn, want, info)
		}
	}
	return dir
}

func (p *certtoolPKI) key(path string) {
	p.run("", "", "--generate-privkey", "--key-type", "rsa", "--bits", "2048", "--outfile", path)
}

// run runs certtool, with a template file of the given contents if name
// is not empty.
func (p *certtoolPKI) run(name, template string, args ...string) string {
	p.t.Helper()
	if name != "" {
		tpl := filepath.Join(p.dir, name)
		if err := os.WriteFile(tpl, []byte(template), 0o600); err != nil {
			p.fatalf("%v", err)
		}
		args = append(args, "--template", tpl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), tooltest.Timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, p.certtool, args...).CombinedOutput()
	if err != nil {
		p.fatalf("certtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (p *certtoolPKI) fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf(format, args...)
}

// qemuTLS runs a qemu tool with a tls-creds-x509 object for a client
// certificate directory against an export on HOST:PORT.
func qemuTLS(t *testing.T, tool, certDir, hostPort, export string, cmds ...string) (string, error) {
	t.Helper()
	host, port, _ := strings.Cut(hostPort, ":")
	bin := tooltest.Need(t, tool, pkgQemu)
	var args []string
	if tool == "qemu-img" {
		args = append(args, "info")
	}
	args = append(args, "--object", "tls-creds-x509,id=tls0,dir="+certDir+",endpoint=client")
	args = append(args, "--image-opts", fmt.Sprintf("driver=nbd,server.type=inet,server.host=%s,server.port=%s,export=%s,tls-creds=tls0", host, port, export))
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), tooltest.Timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

func TestRSAClientCertificatesFromCerttoolWithLibnbdAndQemu(t *testing.T) {
	pki := newCerttoolPKI(t)
	alice, mallory := pki.client(t, "alice"), pki.client(t, "mallory")
	d := startDaemon(t, "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-client-ca", pki.caCert, "--tls-required")
	d.mustCLI("volume", "create", "secret", "--size", "4M", "--allow", "cn=alice:rw")
	uri := func(dir string) string { return fmt.Sprintf("nbds://%s/secret?tls-certificates=%s", d.tcp, dir) }

	// libnbd (GnuTLS): alice's RSA certificate is sent, verified and
	// granted; mallory's is verified and refused by the access list.
	out, code := nbdinfoAs(t, false, uri(alice))
	if code != 0 || !strings.Contains(out, `export="secret":`) || !strings.Contains(out, "is_read_only: false") {
		t.Errorf("nbdinfo as alice: exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "using TLS") && !strings.Contains(out, "with TLS") {
		t.Errorf("nbdinfo as alice does not report TLS:\n%s", out)
	}
	out, code = nbdinfoAs(t, false, uri(mallory))
	if code == 0 || !strings.Contains(out, "access denied") {
		t.Errorf("nbdinfo as mallory: exit %d, want access denied:\n%s", code, out)
	}
	out, _ = nbdinfoAs(t, false, "--list", fmt.Sprintf("nbds://%s/?tls-certificates=%s", d.tcp, mallory))
	if names := exportsListed(out); has(names, "secret") || !has(names, "default") {
		t.Errorf("mallory's LIST: %v, want default without secret:\n%s", names, out)
	}
	// Without a certificate the TLS handshake itself fails.
	out, code = nbdinfoAs(t, false, fmt.Sprintf("nbds://%s/secret", d.tcp))
	if code == 0 {
		t.Errorf("nbdinfo with no client certificate got in:\n%s", out)
	}

	// qemu (GnuTLS too), with tls-creds-x509.
	if out, err := qemuTLS(t, "qemu-io", alice, d.tcp, "secret", "write -P 0xa5 64k 64k", "read -P 0xa5 64k 64k"); err != nil ||
		!strings.Contains(out, "wrote 65536/65536 bytes") || !strings.Contains(out, "read 65536/65536 bytes") || strings.Contains(out, "Pattern verification failed") {
		t.Errorf("qemu-io as alice: %v\n%s", err, out)
	}
	if out, err := qemuTLS(t, "qemu-img", alice, d.tcp, "secret"); err != nil || !strings.Contains(out, "virtual size: 4 MiB") {
		t.Errorf("qemu-img info as alice: %v\n%s", err, out)
	}
	out, err := qemuTLS(t, "qemu-img", mallory, d.tcp, "secret")
	if err == nil || !strings.Contains(out, "access denied") {
		t.Errorf("qemu-img info as mallory: %v, want access denied:\n%s", err, out)
	}
	if m := metric(d.scrape(), "thind_nbd_access_denied_total"); m < 2 {
		t.Errorf("thind_nbd_access_denied_total %v, want at least 2 (nbdinfo and qemu-img as mallory)", m)
	}
	log, err := os.ReadFile(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `msg="NBD client refused by the volume's access list" volume=secret remote=127.0.0.1:`) ||
		!strings.Contains(string(log), `cert="CN=mallory,O=thind test,C=GB"`) {
		t.Errorf("the log does not say that mallory was refused secret:\n%s", log)
	}
	t.Logf("alice (RSA, certtool) served over TLS to nbdinfo, qemu-io and qemu-img; mallory refused")
}

// peer makes a certificate for cn with ip as its address, valid for TLS
// server and client authentication (a send stream's receiver and sender
// each present one), signed by the CA; it returns the certificate and
// key files.
func (p *certtoolPKI) peer(t *testing.T, cn, ip string) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(p.dir, "peer-"+cn+"-cert.pem"), filepath.Join(p.dir, "peer-"+cn+"-key.pem")
	p.key(key)
	p.run(cn+"-peer.info", fmt.Sprintf("organization = thind test\ncn = %s\nip_address = %s\ntls_www_server\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 2\n", cn, ip),
		"--generate-certificate", "--load-ca-certificate", p.caCert, "--load-ca-privkey", p.caKey,
		"--load-privkey", key, "--outfile", cert)
	return cert, key
}
