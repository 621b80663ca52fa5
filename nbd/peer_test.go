package nbd

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/tooltest"
	"github.com/thind-storage/thind/nbd/internal/wire"
)

// peerLookup records the peer of every lookup and denies the exports
// whose name starts with "deny", leaving them out of listings too.
type peerLookup struct {
	*MapExports
	mu    sync.Mutex
	peers []*Peer
}

func (l *peerLookup) record(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := PeerFromContext(ctx)
	if p != nil {
		c := *p
		p = &c
	}
	l.peers = append(l.peers, p)
}

func (l *peerLookup) last() *Peer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peers[len(l.peers)-1]
}

func (l *peerLookup) ListExports(ctx context.Context) ([]ExportSummary, error) {
	l.record(ctx)
	all, err := l.MapExports.ListExports(ctx)
	return slices.DeleteFunc(all, func(e ExportSummary) bool { return strings.HasPrefix(e.Name, "deny") }), err
}

func (l *peerLookup) LookupExport(ctx context.Context, name string) (*Export, error) {
	l.record(ctx)
	if strings.HasPrefix(name, "deny") {
		return nil, ErrAccessDenied
	}
	return l.MapExports.LookupExport(ctx, name)
}

// servePeers serves lookup on a unix socket and a TCP port.
func servePeers(t *testing.T, lookup ExportLookup, opts Options) (*Server, string, string) {
	t.Helper()
	opts.Logger = testLogger(t)
	srv, err := NewServer(lookup, opts)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(tooltest.ShortDir(t), "nbd.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, l := range []net.Listener{ul, tl} {
		wg.Go(func() { srv.Serve(ctx, l) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return srv, sock, tl.Addr().String()
}

func TestTheLookupSeesThePeerAndMayDenyAnExport(t *testing.T) {
	ok, _ := memExport("ok", 1<<20)
	deny, _ := memExport("deny-me", 1<<20)
	lookup := &peerLookup{MapExports: NewMapExports(ok, deny)}
	srv, sock, tcp := servePeers(t, lookup, Options{})

	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c := newRawClient(t, nc)
	c.greet(wire.ClientFlagFixedNewstyle)
	rs := c.expectOption(wire.OptList, nil, wire.RepAck)
	if len(rs) != 2 {
		t.Errorf("LIST gave %d replies, want the allowed export and ACK", len(rs))
	}
	p := lookup.last()
	groups, _ := os.Getgroups()
	switch {
	case p == nil || p.Cred == nil:
		t.Fatalf("a unix client's peer: %+v", p)
	case p.Cred.UID != uint32(os.Getuid()) || p.Cred.GID != uint32(os.Getgid()) || p.Cred.PID != int32(os.Getpid()):
		t.Errorf("credentials %+v, want this process's", p.Cred)
	case len(p.Cred.Groups) != len(groups):
		t.Errorf("supplementary groups %v, want %v", p.Cred.Groups, groups)
	case p.TLS || p.Cert != nil:
		t.Errorf("a plain client's peer says TLS: %+v", p)
	}
	info := wire.InfoRequest{Name: "deny-me"}.Append(nil)
	rs = c.expectOption(wire.OptGo, info, wire.RepErrPolicy)
	if msg := string(rs[len(rs)-1].data); !strings.Contains(msg, "deny-me") {
		t.Errorf("the refusal %q does not name the export", msg)
	}
	c.goExport("ok")
	c.pread(0, 512)

	tc, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	c2 := newRawClient(t, tc)
	c2.greet(wire.ClientFlagFixedNewstyle)
	c2.sendOption(wire.OptExportName, []byte("deny-me"))
	c2.expectClosed()
	if p := lookup.last(); p.Cred != nil || p.Addr.Network() != "tcp" {
		t.Errorf("a TCP client's peer: %+v", p)
	}
	st := srv.Stats()
	if st.AccessDenied != 2 || st.HandshakeFailures[FailureAccessDenied] != 1 {
		t.Errorf("access denied %d, EXPORT_NAME closes %d; want 2 and 1", st.AccessDenied, st.HandshakeFailures[FailureAccessDenied])
	}
}

func TestAcceptPeerTurnsAClientAwayBeforeTheGreeting(t *testing.T) {
	e, _ := memExport("vol", 1<<20)
	seen := make(chan *Peer, 1)
	srv, sock, _ := servePeers(t, NewMapExports(e), Options{AcceptPeer: func(p *Peer) error {
		seen <- p
		return errors.New("not you")
	}})
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	newRawClient(t, nc).expectClosed()
	if p := <-seen; p.Cred == nil || p.Cred.UID != uint32(os.Getuid()) {
		t.Errorf("AcceptPeer saw %+v", p)
	}
	waitUntil(t, func() bool { return srv.Stats().HandshakeFailures[FailurePeerRefused] == 1 })
}

// Client certificates are checked by the server, not announced: the
// CertificateRequest lists no CAs (GnuTLS 3.7 clients then send RSA
// certificates), a certificate of another CA is refused, and the lookup
// sees the verified certificate.
func TestClientCertificatesAreVerifiedWithoutACAList(t *testing.T) {
	pki, other := newTestPKI(t), newTestPKI(t)
	e, _ := memExport("vol", 1<<20)
	lookup := &peerLookup{MapExports: NewMapExports(e)}
	srv, sock, _ := servePeers(t, lookup, Options{TLSMode: TLSRequired, TLSConfig: pki.serverConfig(true)})

	connect := func(cfg *tls.Config) (*rawClient, error) {
		nc, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		c := newRawClient(t, nc)
		c.greet(wire.ClientFlagFixedNewstyle)
		if err := c.startTLS(cfg); err != nil {
			return c, err
		}
		// TLS 1.3: the verdict on the client's certificate comes with
		// the server's first answer, or as a closed connection before
		// the option is written.
		if _, err := c.nc.Write(wire.AppendOptionHeader(nil, wire.OptionHeader{Option: wire.OptList})); err != nil {
			return c, err
		}
		h := make([]byte, wire.OptionReplyHeaderSize)
		_, err = c.br.Read(h)
		return c, err
	}
	var hints [][]byte
	cfg := pki.clientConfig(false)
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		hints = cri.AcceptableCAs
		return &pki.client, nil
	}
	if _, err := connect(cfg); err != nil {
		t.Fatalf("a client with the CA's certificate: %v", err)
	}
	if len(hints) != 0 {
		t.Errorf("the CertificateRequest lists %d CAs, want none", len(hints))
	}
	if p := lookup.last(); !p.TLS || p.Cert == nil || p.Cert.Subject.CommonName != "thind-client" {
		t.Errorf("the lookup's peer after TLS: %+v", p)
	}
	foreign := pki.clientConfig(false)
	foreign.Certificates = []tls.Certificate{other.client}
	if _, err := connect(foreign); err == nil {
		t.Error("a certificate of another CA was accepted")
	}
	if _, err := connect(pki.clientConfig(false)); err == nil {
		t.Error("a client without a certificate was accepted")
	}
	waitUntil(t, func() bool { return srv.Stats().HandshakeFailures[FailureTLS] == 2 })
}

// waitUntil polls cond, which a server goroutine makes true soon after
// the event the test caused (a counter bumped as a connection ends).
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}
