package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/tooltest"
	"github.com/thind-storage/thind/sendstream"
)

// netnsPair makes two network namespaces joined by a veth pair and
// returns their names and addresses; the test's end removes them.
func netnsPair(t *testing.T) (nsA, nsB, addrA, addrB string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the replication test needs root for ip netns (run it as root, as CI does)")
	}
	tag := fmt.Sprintf("%d", os.Getpid()%100000)
	nsA, nsB = "thind-a"+tag, "thind-b"+tag
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", nsA)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsA).Run() })
	ip("netns", "add", nsB)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsB).Run() })
	ip("link", "add", "veth-a"+tag, "netns", nsA, "type", "veth", "peer", "name", "veth-b"+tag, "netns", nsB)
	addrA, addrB = "10.231.7.1", "10.231.7.2"
	for _, x := range [][3]string{{nsA, "veth-a" + tag, addrA}, {nsB, "veth-b" + tag, addrB}} {
		ip("-n", x[0], "addr", "add", x[2]+"/24", "dev", x[1])
		ip("-n", x[0], "link", "set", x[1], "up")
		ip("-n", x[0], "link", "set", "lo", "up")
	}
	return nsA, nsB, addrA, addrB
}

// startDaemonIn starts a daemon in network namespace ns, serving NBD on
// addr there (and its unix socket, which namespaces do not separate).
func startDaemonIn(t *testing.T, ns, addr string, extra ...string) *daemon {
	t.Helper()
	d := newDaemon(t, extra...)
	d.netns, d.tcp, d.metrics = ns, addr+":10809", addr+":9810"
	pooltest.CheckFile(t, filepath.Join(d.dir, "metadata"))
	t.Cleanup(func() { // before the check
		if d.running() {
			d.stop()
		}
	})
	d.start()
	return d
}

// thindIn is the thind CLI against d, in d's namespace.
func (d *daemon) thindIn(args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", d.netns, thindBin}, args...)...)
	cmd.Env = append(daemonEnv(), "THIND_DATA_DIR="+d.dir)
	return cmd
}

// transfer sends with `thind volume send` on a into `thind volume
// receive` on b: through a pipe, or with tcp over the veth pair (send
// --to, receive --listen). If after is positive, victim SIGKILLs one of
// the four processes after that long (and the other side, should it hang
// on, a few seconds later). It returns the error output and whether both
// sides exited 0.
func transfer(t *testing.T, a, b *daemon, sendArgs []string, name string, tcp bool, after time.Duration, victim int) (string, bool) {
	t.Helper()
	send := a.thindIn(append([]string{"volume", "send"}, sendArgs...)...)
	recv := b.thindIn("volume", "receive", name)
	var pr, pw *os.File
	if tcp {
		addr := strings.Split(b.tcp, ":")[0] + ":10900"
		send.Args = append(send.Args, "--to", addr)
		recv.Args = append(recv.Args, "--listen", addr)
	} else {
		var err error
		if pr, pw, err = os.Pipe(); err != nil {
			t.Fatal(err)
		}
		send.Stdout, recv.Stdin = pw, pr
	}
	var sendErr, recvErr bytes.Buffer
	send.Stderr, recv.Stderr = &sendErr, &recvErr
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := send.Start(); err != nil {
		t.Fatal(err)
	}
	if pw != nil {
		pw.Close()
		pr.Close()
	}
	if after > 0 {
		p := []*os.Process{send.Process, recv.Process, a.cmd.Process, b.cmd.Process}[victim]
		time.AfterFunc(after, func() { p.Signal(syscall.SIGKILL) })
		time.AfterFunc(after+5*time.Second, func() {
			send.Process.Signal(syscall.SIGKILL)
			recv.Process.Signal(syscall.SIGKILL)
		})
	}
	se, re := send.Wait(), recv.Wait()
	return sendErr.String() + recvErr.String(), se == nil && re == nil
}

// nbdSum is the sha256 of volume vol of d read over NBD/TCP from the
// namespace of from (d's own, or across the veth pair).
func nbdSum(t *testing.T, from, d *daemon, vol string) [32]byte {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", from.netns, "nbdcopy", d.tcpURI(vol), "-").Output()
	if err != nil {
		t.Fatalf("nbdcopy %s: %v", d.tcpURI(vol), err)
	}
	return sha256.Sum256(out)
}

// scrapeIn reads d's metrics from inside its namespace.
func scrapeIn(t *testing.T, d *daemon) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", d.netns, "/usr/bin/python3", "-c",
		"import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())",
		"http://"+d.metrics+"/metrics").Output()
	if err != nil {
		t.Fatalf("scraping %s: %v", d.metrics, err)
	}
	return string(out)
}

func hasVolume(d *daemon, name string) bool {
	for _, v := range d.volumes() {
		if v.Name == name {
			return true
		}
	}
	return false
}

// TestReplicateBetweenNamespaces sends a full stream and incrementals
// from a daemon in one network namespace to one in another, checking the
// sha256 over NBD after each; kills the sender or the receiver at random
// points at least 20 times and resumes from the receiver's token each
// time, the snapshot never visible before it is complete; and refuses
// corrupted, truncated and replayed streams and a wrong base.
func TestReplicateBetweenNamespaces(t *testing.T) {
	randtest.Each(t, 1, func(t *testing.T, seed uint64) {
		rng := randtest.FromSeed(seed)
		nsA, nsB, addrA, addrB := netnsPair(t)
		pool := []string{"--data-size", "512M", "--metadata-size", "16M"}
		a := startDaemonIn(t, nsA, addrA, pool...)
		b := startDaemonIn(t, nsB, addrB, pool...)
		const size = 64 << 20
		a.mustCLI("volume", "create", "vm", "--size", "64M")
		m := &blockModel{vols: map[string]map[int64]int{"vm": {}}}

		kills, resumedMidway := 0, 0
		victims := []string{"send", "receive", "sending daemon", "receiving daemon"}
		killed := map[string]int{}
		// replicate sends snap (from base) into b, killing a side at
		// random until kills reaches want, then resumes to the end.
		replicate := func(snap, base, name string, want int) {
			args := []string{snap}
			if base != "" {
				args = append(args, "--from", base)
			}
			resume := ""
			for attempt := 0; ; attempt++ {
				var kill time.Duration
				victim := rng.IntN(len(victims))
				if kills < want {
					kill = time.Duration(5+rng.IntN(150)) * time.Millisecond
				}
				sendArgs := args
				if resume != "" {
					sendArgs = append(append([]string{}, args...), "--resume", resume)
				}
				tcp := rng.IntN(2) == 0
				out, ok := transfer(t, a, b, sendArgs, name, tcp, kill, victim)
				if kill > 0 && victim >= 2 {
					// A daemon was killed (or is about to be, if the
					// transfer won the race): start it again.
					d := []*daemon{a, b}[victim-2]
					d.kill()
					d.start()
				}
				if ok {
					break
				}
				if kill == 0 {
					t.Fatalf("send %v into b (tcp %v) failed without a kill:\n%s", sendArgs, tcp, out)
				}
				kills++
				killed[victims[victim]]++
				if hasVolume(b, name) {
					// The receive completed just before the kill: then
					// it must be whole.
					break
				}
				if attempt > 200 {
					t.Fatal("no progress after 200 attempts")
				}
				// A receive cut short keeps a token; one killed before the
				// staging volume existed starts over.
				tok, _, code := b.cli("volume", "receive", name, "--resume-token")
				resume = strings.TrimSpace(tok)
				if code != 0 {
					resume = ""
				} else if tk, err := sendstream.ParseToken(resume); err != nil {
					t.Fatalf("b's resume token %q: %v", resume, err)
				} else if tk.Offset > 0 {
					resumedMidway++
				}
			}
			if got, want := nbdSum(t, a, b, name), nbdSum(t, a, a, snap); got != want {
				t.Fatalf("%s on b: sha256 %x, a's %s %x", name, got, snap, want)
			}
			// A kill between the snapshot landing and its staging
			// volume's deletion leaves nothing behind either.
			waitFor(t, "no staging volume left on b", 10*time.Second, func() error {
				out := b.mustCLI("volume", "list", "--all", "--json")
				var vols []volumeJSON
				if err := json.Unmarshal([]byte(out), &vols); err != nil {
					t.Fatalf("volume list --all --json: %v\n%s", err, out)
				}
				for _, v := range vols {
					if v.Name == name+".receiving" {
						return fmt.Errorf("%s is still there", v.Name)
					}
				}
				return nil
			})
		}

		snaps := []string{"s0", "s1", "s2", "s3"}
		for i, snap := range snaps {
			ops := 300
			if i > 0 {
				ops = 80
			}
			m.workload(t, a, rng, "vm", size, ops)
			a.mustCLI("volume", "snapshot", "vm", snap)
			base := ""
			if i > 0 {
				base = snaps[i-1]
			}
			replicate(snap, base, snap, (i+1)*5)
		}
		for kills < 20 {
			// More kills on full streams of fresh names, each then
			// deleted.
			replicate("s3", "", "extra", kills+5)
			b.mustCLI("volume", "delete", "extra")
		}
		t.Logf("%d kills (%v), every resume completed, %d of them past the start", kills, killed, resumedMidway)
		if resumedMidway == 0 {
			t.Fatal("no resume started past the stream's start: each resent everything")
		}

		// Refusals, each leaving no new volume on b.
		dir := t.TempDir()
		stream := filepath.Join(dir, "s1.stream")
		a.mustCLI("volume", "send", "s1", "--from", "s0", "-o", stream)
		good, _ := os.ReadFile(stream)
		refuse := func(what string, data []byte, name, wantErr string) {
			t.Helper()
			f := filepath.Join(dir, what)
			os.WriteFile(f, data, 0o600)
			before, existed := len(b.volumes()), hasVolume(b, name)
			_, errOut, code := b.cli("volume", "receive", name, "-i", f)
			if code == 0 || !strings.Contains(errOut, wantErr) {
				t.Fatalf("%s stream: exit %d, %q; want a refusal saying %q", what, code, errOut, wantErr)
			}
			if !existed && hasVolume(b, name) {
				t.Fatalf("%s stream: %s appeared on b", what, name)
			}
			b.cli("volume", "receive", name, "--abort")
			if n := len(b.volumes()); n != before {
				t.Fatalf("%s stream: b had %d volumes, now %d", what, before, n)
			}
		}
		bad := bytes.Clone(good)
		bad[len(bad)/2] ^= 1
		refuse("corrupt", bad, "c1", "corrupt send stream")
		refuse("truncated", good[:len(good)-10], "c2", "truncated send stream")
		s1 := nbdSum(t, b, b, "s1")
		refuse("replayed", good, "s1", "already received")
		if nbdSum(t, b, b, "s1") != s1 {
			t.Fatal("the replayed stream changed s1 on b")
		}
		a.mustCLI("volume", "snapshot", "vm", "never-sent")
		a.mustCLI("volume", "snapshot", "vm", "s4")
		wrong := filepath.Join(dir, "wrong.stream")
		a.mustCLI("volume", "send", "s4", "--from", "never-sent", "-o", wrong)
		wb, _ := os.ReadFile(wrong)
		refuse("wrong-base", wb, "s4", "applies on a base this pool does not have")

		// Metrics, since the last restarts: a's two streams to files,
		// b's four refusals.
		am, bm := scrapeIn(t, a), scrapeIn(t, b)
		if v := metric(am, "thind_send_bytes_total"); v < float64(len(good)+len(wb)) {
			t.Fatalf("thind_send_bytes_total %v, want >= %d", v, len(good)+len(wb))
		}
		if metric(am, "thind_sends_total") < 2 || metric(am, "thind_send_delta_bytes_total") <= 0 || metric(am, "thind_send_duration_seconds_total") <= 0 {
			t.Fatalf("a's send metrics:\n%s", am)
		}
		if metric(bm, "thind_receives_failed_total") < 4 || metric(bm, "thind_receive_bytes_total") <= 0 || metric(bm, "thind_receive_duration_seconds_total") <= 0 {
			t.Fatalf("b's receive metrics:\n%s", bm)
		}

		// The sender trusts no token: garbage, too long, another
		// stream's, an offset off a block boundary or past the end.
		var h sendstream.Header
		if r, err := sendstream.NewReader(bytes.NewReader(good)); err != nil {
			t.Fatal(err)
		} else {
			h = r.Header() // s1 from s0
		}
		for _, tok := range []string{
			"not a token!",
			strings.Repeat("A", sendstream.MaxTokenLen+1),
			sendstream.Token{SnapshotID: h.SnapshotID, BaseID: "", Offset: 0}.String(),
			sendstream.Token{SnapshotID: h.BaseID, BaseID: h.BaseID, Offset: 0}.String(),
			sendstream.Token{SnapshotID: h.SnapshotID, BaseID: h.BaseID, Offset: blockSize + 1}.String(),
			sendstream.Token{SnapshotID: h.SnapshotID, BaseID: h.BaseID, Offset: 1 << 62}.String(),
		} {
			out, errOut, code := a.cli("volume", "send", "s1", "--from", "s0", "--resume", tok)
			if code == 0 || out != "" || !strings.Contains(errOut, "resume token") {
				t.Fatalf("send --resume %.40q: exit %d, %d bytes out, %q; want a refusal", tok, code, len(out), errOut)
			}
		}
	})
}

// TestReplicateOverTLSBetweenNamespaces sends a full stream and
// incrementals between daemons in two network namespaces over mutual
// TLS, the receiver allowing the sender's certificate by CN; then keeps
// one receive listening while strangers try it (plain TCP, no
// certificate, a certificate of another CA, one the allow list does not
// name, a sender that does not trust the receiver's CA): each is
// refused with a clear error, nothing is applied, and the receive still
// takes the real sender's stream. Plain TCP off loopback is warned
// about on both sides.
func TestReplicateOverTLSBetweenNamespaces(t *testing.T) {
	randtest.Each(t, 1, func(t *testing.T, seed uint64) {
		rng := randtest.FromSeed(seed)
		nsA, nsB, addrA, addrB := netnsPair(t)
		pki, other := newCerttoolPKI(t), newCerttoolPKI(t)
		sendCert, sendKey := pki.peer(t, "sender-a", addrA)
		recvCert, recvKey := pki.peer(t, "receiver-b", addrB)
		malCert, malKey := pki.peer(t, "mallory", addrA)
		strCert, strKey := other.peer(t, "sender-a", addrA) // the right CN, another CA
		pool := []string{"--data-size", "256M", "--metadata-size", "16M"}
		a := startDaemonIn(t, nsA, addrA, pool...)
		b := startDaemonIn(t, nsB, addrB, pool...)
		const size = 32 << 20
		a.mustCLI("volume", "create", "vm", "--size", "32M")
		m := &blockModel{vols: map[string]map[int64]int{"vm": {}}}

		listen := addrB + ":10901"
		tlsArgs := func(cert, key, ca string) []string {
			return []string{"--tls-cert", cert, "--tls-key", key, "--tls-ca", ca}
		}
		good := tlsArgs(sendCert, sendKey, pki.caCert)
		recvArgs := append(tlsArgs(recvCert, recvKey, pki.caCert), "--tls-allow", "cn=sender-a")
		// startReceive starts `thind volume receive NAME --listen` on b.
		startReceive := func(name string, extra ...string) (*exec.Cmd, *tooltest.LockedBuffer) {
			recv := b.thindIn(append([]string{"volume", "receive", name, "--listen", listen}, extra...)...)
			var errOut tooltest.LockedBuffer
			recv.Stderr = &errOut
			if err := recv.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { recv.Process.Kill() })
			return recv, &errOut
		}
		send := func(args ...string) (string, int) {
			cmd := a.thindIn(append([]string{"volume", "send"}, append(args, "--to", listen)...)...)
			out, err := cmd.CombinedOutput()
			return string(out), tooltest.ExitStatus(t, err)
		}
		snaps := []string{"s0", "s1", "s2", "s3"}
		for i, snap := range snaps {
			m.workload(t, a, rng, "vm", size, 100)
			a.mustCLI("volume", "snapshot", "vm", snap)
			args := []string{snap}
			if i > 0 {
				args = append(args, "--from", snaps[i-1])
			}
			if i == len(snaps)-1 {
				break // for the strangers below
			}
			recv, recvErr := startReceive(snap, recvArgs...)
			out, code := send(append(args, good...)...)
			if err := recv.Wait(); err != nil || code != 0 {
				t.Fatalf("send %v over TLS: exit %d, receive %v:\n%s%s", args, code, err, out, recvErr)
			}
			if strings.Contains(out+recvErr.String(), "warning") {
				t.Errorf("a TLS transfer warned:\n%s%s", out, recvErr)
			}
			if got, want := nbdSum(t, a, b, snap), nbdSum(t, a, a, snap); got != want {
				t.Fatalf("%s on b: sha256 %x, a's %x", snap, got, want)
			}
		}
		t.Logf("s0 full and s1, s2 incremental over mutual TLS: sha256 equal after each")

		// Strangers at one receive of s3.
		recv, recvErr := startReceive("s3", recvArgs...)
		inc := []string{"s3", "--from", "s2"}
		for _, tc := range []struct {
			what     string
			args     []string
			sendSays string // in the stranger's error
			recvSays string // in the receiver's report of the refusal
		}{
			{"plain TCP", nil, "this receiver takes the stream over TLS only", "first record does not look like a TLS handshake"},
			{"a certificate of another CA", tlsArgs(strCert, strKey, pki.caCert), "remote error: tls", "certificate signed by unknown authority"},
			{"a certificate --tls-allow does not name", tlsArgs(malCert, malKey, pki.caCert), "remote error: tls", "no --tls-allow grant names the sender's certificate"},
			{"a sender that does not trust the receiver's CA", tlsArgs(strCert, strKey, other.caCert), "certificate signed by unknown authority", "remote error: tls"},
		} {
			out, code := send(append(inc, tc.args...)...)
			if code == 0 || !strings.Contains(out, tc.sendSays) {
				t.Errorf("%s: exit %d, want a refusal saying %q:\n%s", tc.what, code, tc.sendSays, out)
			}
			t.Logf("%s: the sender says %s", tc.what, strings.TrimSpace(out))
			if tc.args == nil && !strings.Contains(out, "warning: sending to "+listen+" without TLS") {
				t.Errorf("plain TCP to %s: no warning:\n%s", listen, out)
			}
			waitFor(t, "the receiver to report refusing "+tc.what, 30*time.Second, func() error {
				if !strings.Contains(recvErr.String(), tc.recvSays) {
					return fmt.Errorf("receiver's output %q lacks %q", recvErr.String(), tc.recvSays)
				}
				return nil
			})
		}
		// No certificate at all (gnutls-cli, which offers none unless
		// asked).
		gc := exec.Command("ip", "netns", "exec", nsA, tooltest.Need(t, "gnutls-cli", pkgGnutls),
			"--x509cafile", pki.caCert, "--port", "10901", addrB)
		gc.Stdin = strings.NewReader("THINDSS\x01")
		gcOut, _ := gc.CombinedOutput()
		waitFor(t, "the receiver to report a sender without a certificate", 30*time.Second, func() error {
			if !strings.Contains(recvErr.String(), "didn't provide a certificate") {
				return fmt.Errorf("receiver's output %q (gnutls-cli: %s)", recvErr.String(), gcOut)
			}
			return nil
		})
		if n := strings.Count(recvErr.String(), "thind: refused a sender from "+addrA); n != 5 {
			t.Errorf("the receiver reported %d refusals, want 5:\n%s", n, recvErr)
		}
		if out := b.mustCLI("volume", "list", "--all"); strings.Contains(out, "s3") {
			t.Fatalf("a stranger's stream was applied:\n%s", out)
		}
		out, code := send(append(inc, good...)...)
		if err := recv.Wait(); err != nil || code != 0 {
			t.Fatalf("the real sender after the strangers: exit %d, receive %v:\n%s%s", code, err, out, recvErr)
		}
		if got, want := nbdSum(t, a, b, "s3"), nbdSum(t, a, a, "s3"); got != want {
			t.Fatalf("s3 on b: sha256 %x, a's %x", got, want)
		}
		t.Logf("5 strangers refused, nothing applied; the receive then took s3 from the real sender; the receiver said:\n%s", recvErr)

		// Plain TCP off loopback works, with a warning on each side.
		a.mustCLI("volume", "snapshot", "vm", "s4")
		recv, recvErr = startReceive("s4")
		out, code = send("s4", "--from", "s3")
		if err := recv.Wait(); err != nil || code != 0 {
			t.Fatalf("plain send: exit %d, receive %v:\n%s%s", code, err, out, recvErr)
		}
		if !strings.Contains(out, "without TLS") || !strings.Contains(recvErr.String(), "warning: listening on "+listen+" without TLS") {
			t.Errorf("plain TCP off loopback: no warning on both sides:\n%s%s", out, recvErr)
		}

		// Flags that do not make mutual TLS are refused before anything.
		for _, tc := range []struct {
			args []string
			says string
		}{
			{[]string{"volume", "send", "s4", "--to", listen, "--tls-cert", sendCert}, "give --tls-cert, --tls-key and --tls-ca together"},
			{[]string{"volume", "send", "s4", "-o", "/dev/null", "--tls-cert", sendCert, "--tls-key", sendKey, "--tls-ca", pki.caCert}, "are for --to"},
			{append([]string{"volume", "receive", "x", "--listen", listen}, append(tlsArgs(recvCert, recvKey, pki.caCert), "--tls-allow", "uid=0")...), "a sender is known by its certificate"},
			{append([]string{"volume", "receive", "x", "--listen", listen}, append(tlsArgs(recvCert, recvKey, pki.caCert), "--tls-allow", "cn=sender-a:ro")...), "a sender only writes"},
			{[]string{"volume", "receive", "x", "--listen", listen, "--tls-allow", "cn=sender-a"}, "--tls-allow needs --tls-cert"},
		} {
			if _, errOut, code := b.cli(tc.args...); code == 0 || !strings.Contains(errOut, tc.says) {
				t.Errorf("thind %s: exit %d, %q; want %q", strings.Join(tc.args, " "), code, errOut, tc.says)
			}
		}
	})
}
