package test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/thind-storage/thind/internal/tooltest"
)

// The access-control tests run clients as another local user, nobody
// (uid and gid 65534), against a `thind serve` running as root, as a
// hostile local user would.
const nobodyID = 65534

// letOthersReach opens the directories from dir up to the temporary
// directory for search (o+x), so that nobody can reach the sockets in
// dir; what the sockets allow is then up to thind.
func letOthersReach(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the access tests run clients as nobody: they need root")
	}
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Clean(dir); d != tmp && d != "/" && strings.HasPrefix(d, tmp); d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, st.Mode().Perm()|0o011); err != nil {
			t.Fatal(err)
		}
	}
}

// asNobody runs a program as uid and gid 65534 with no supplementary
// groups, and returns its combined output and exit status.
func asNobody(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tooltest.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyID, Gid: nobodyID, Groups: []uint32{}}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), tooltest.ExitStatus(t, err)
}

// nbdinfoAs runs nbdinfo with libnbd's debug log (which shows the
// server's error messages) as nobody or, with nobody false, as root.
func nbdinfoAs(t *testing.T, nobody bool, args ...string) (string, int) {
	t.Helper()
	bin := tooltest.Need(t, "nbdinfo", pkgLibnbd)
	env := append(daemonEnv(), "LIBNBD_DEBUG=1")
	if nobody {
		return asNobody(t, env, bin, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), tooltest.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), tooltest.ExitStatus(t, err)
}

// exportsListed returns the export names nbdinfo --list prints.
func exportsListed(out string) []string {
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if n, ok := strings.CutPrefix(l, "export=\""); ok {
			names = append(names, strings.TrimSuffix(n, "\":"))
		}
	}
	return names
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestOtherLocalUsersGetNothingByDefault(t *testing.T) {
	d := startDaemon(t)
	ctl := filepath.Join(d.dir, "control.sock")
	for _, sock := range []string{d.sock, ctl} {
		st, err := os.Stat(sock)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode().Perm() != 0o660 || sys.Uid != 0 || sys.Gid != 0 {
			t.Errorf("%s: mode %v owner %d:%d, want 0660 root:root", sock, st.Mode().Perm(), sys.Uid, sys.Gid)
		}
	}
	letOthersReach(t, d.dir)

	out, code := nbdinfoAs(t, true, d.unixURI(""))
	if code == 0 || !strings.Contains(out, "Permission denied") {
		t.Errorf("nobody's nbdinfo on the default socket: exit %d, want Permission denied:\n%s", code, out)
	}
	out, code = asNobody(t, append(daemonEnv(), "THIND_DATA_DIR="+d.dir), thindBin, "volume", "list")
	if code == 0 {
		t.Errorf("nobody's thind volume list succeeded on the default control socket:\n%s", out)
	}

	// The peer check stands behind the file mode: a socket opened to all
	// behind thind's back still turns nobody away.
	for _, sock := range []string{d.sock, ctl} {
		if err := os.Chmod(sock, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	out, code = nbdinfoAs(t, true, d.unixURI(""))
	if code == 0 || strings.Contains(out, "export-size") {
		t.Errorf("nobody got in after a chmod 0666 of the NBD socket: exit %d:\n%s", code, out)
	}
	out, code = asNobody(t, append(daemonEnv(), "THIND_DATA_DIR="+d.dir), thindBin, "volume", "list")
	if code == 0 || !strings.Contains(out, "may not use this socket") {
		t.Errorf("nobody's volume list after a chmod 0666 of the control socket: exit %d, want a refusal:\n%s", code, out)
	}
	if m := metric(d.scrape(), `thind_nbd_handshake_failures_total{reason="peer_refused"}`); m < 1 {
		t.Errorf("peer_refused handshake failures %v, want at least 1", m)
	}
	// Root still gets in.
	if out, code := nbdinfoAs(t, false, d.unixURI("")); code != 0 {
		t.Errorf("root's nbdinfo: exit %d:\n%s", code, out)
	}
	t.Logf("nobody refused by the socket mode, then by the peer check")
}

func TestASocketGroupLetsItsMembersInAndTheControlAPIOnlyReads(t *testing.T) {
	d := startDaemon(t, "--socket-group", "nogroup")
	letOthersReach(t, d.dir)
	st, err := os.Stat(d.sock)
	if err != nil {
		t.Fatal(err)
	}
	if gid := st.Sys().(*syscall.Stat_t).Gid; gid != nobodyID {
		t.Fatalf("NBD socket group %d, want nogroup (%d)", gid, nobodyID)
	}
	if out, code := nbdinfoAs(t, true, d.unixURI("")); code != 0 || !strings.Contains(out, "export-size") {
		t.Errorf("nogroup's nbdinfo: exit %d:\n%s", code, out)
	}
	env := append(daemonEnv(), "THIND_DATA_DIR="+d.dir)
	out, code := asNobody(t, env, thindBin, "volume", "list")
	if code != 0 || !strings.Contains(out, "default") {
		t.Errorf("nogroup's volume list: exit %d:\n%s", code, out)
	}
	out, code = asNobody(t, env, thindBin, "volume", "create", "mine", "--size", "1M")
	if code == 0 || !strings.Contains(out, "uid 65534 may only read; changes need root") {
		t.Errorf("nogroup's volume create: exit %d, want a refusal saying who may:\n%s", code, out)
	}
	if out, code = asNobody(t, env, thindBin, "volume", "delete", "default"); code == 0 {
		t.Errorf("nogroup deleted a volume:\n%s", out)
	}
	if names := volumeNames(d.volumes()); len(names) != 1 || names[0] != "default" {
		t.Errorf("volumes after nobody's attempts: %v, want [default]", names)
	}

	// With --control-group nogroup, the same peer may change volumes.
	d.stop()
	d.args = append(d.args, "--control-group", "nogroup")
	d.start()
	if out, code = asNobody(t, env, thindBin, "volume", "create", "mine", "--size", "1M"); code != 0 {
		t.Errorf("a --control-group member's volume create: exit %d:\n%s", code, out)
	}
}

func volumeNames(vols []volumeJSON) []string {
	var names []string
	for _, v := range vols {
		names = append(names, v.Name)
	}
	return names
}

func TestVolumeAccessListsByUnixPeer(t *testing.T) {
	d := startDaemon(t, "--socket-mode", "0666")
	letOthersReach(t, d.dir)
	d.mustCLI("volume", "create", "private", "--size", "1M", "--allow", "uid=65534:ro")
	v := d.volumeShow("private")
	if len(v.Access) != 1 || v.Access[0] != "uid=65534:ro" {
		t.Fatalf("volume show: access %q, want [uid=65534:ro]", v.Access)
	}

	// Root is not on the list: NBD_REP_ERR_POLICY, and no LIST entry.
	_, err := dialNBD("unix", d.sock, "private")
	var oe *optionError
	if !errors.As(err, &oe) || oe.Reply != nbdRepErrPolicy || !strings.Contains(oe.Msg, "access denied") {
		t.Errorf("root opening private: %v, want NBD_REP_ERR_POLICY (%#x) with access denied", err, uint32(nbdRepErrPolicy))
	}
	out, _ := nbdinfoAs(t, false, "--list", d.unixURI(""))
	if names := exportsListed(out); !has(names, "default") || has(names, "private") {
		t.Errorf("root's LIST: %v, want default and not private:\n%s", names, out)
	}
	// nobody is, read-only.
	out, code := nbdinfoAs(t, true, d.unixURI("private"))
	if code != 0 || !strings.Contains(out, "is_read_only: true") {
		t.Errorf("nobody's nbdinfo on private: exit %d, want read-only:\n%s", code, out)
	}
	out, _ = nbdinfoAs(t, true, "--list", d.unixURI(""))
	if names := exportsListed(out); !has(names, "private") || !has(names, "default") {
		t.Errorf("nobody's LIST: %v, want private and default (no list):\n%s", names, out)
	}

	// The server itself refuses the write (libnbd's strict mode, which
	// would refuse it on the client side, is off).
	if out, code := asNobody(t, daemonEnv(), pythonLibnbd(t), "-c", pwriteScript, d.unixURI("private")); code != 0 || !strings.Contains(out, "refused errno EPERM") {
		t.Errorf("nobody's write through a read-only grant: exit %d, want the server's EPERM:\n%s", code, out)
	}
	// update: read-write for nobody; a snapshot keeps the list.
	d.mustCLI("volume", "update", "private", "--allow", "uid=65534:rw")
	if out, code := nbdinfoAs(t, true, d.unixURI("private")); code != 0 || !strings.Contains(out, "is_read_only: false") {
		t.Errorf("nobody's nbdinfo after --allow uid=65534:rw: exit %d:\n%s", code, out)
	}
	if out, code := asNobody(t, daemonEnv(), pythonLibnbd(t), "-c", pwriteScript, d.unixURI("private")); code != 0 || !strings.Contains(out, "wrote and read back") {
		t.Errorf("nobody's write through a read-write grant: exit %d:\n%s", code, out)
	}
	d.mustCLI("volume", "snapshot", "private", "private-snap")
	if s := d.volumeShow("private-snap"); len(s.Access) != 1 || s.Access[0] != "uid=65534:rw" {
		t.Errorf("snapshot access %q, want the origin's [uid=65534:rw]", s.Access)
	}
	if _, err := dialNBD("unix", d.sock, "private-snap"); !errors.As(err, &oe) || oe.Reply != nbdRepErrPolicy {
		t.Errorf("root opening the snapshot: %v, want NBD_REP_ERR_POLICY", err)
	}
	// A bad grant is refused with the syntax.
	_, errOut, code := d.cli("volume", "update", "private", "--allow", "user=alice")
	if code == 0 || !strings.Contains(errOut, `kind "user"`) {
		t.Errorf("--allow user=alice: exit %d: %s", code, errOut)
	}
	// --open removes the list: root gets in again.
	d.mustCLI("volume", "update", "private", "--open")
	c, err := dialNBD("unix", d.sock, "private")
	if err != nil {
		t.Fatalf("root after --open: %v", err)
	}
	c.close()
}

// volumeShow is `thind volume show NAME` with its access list.
func (d *daemon) volumeShow(name string) struct{ Access []string } {
	d.t.Helper()
	var v struct{ Access []string }
	if err := d.control("GET", "/v1/volumes/"+name, nil, &v); err != nil {
		d.t.Fatal(err)
	}
	return v
}

func TestTCPNeedsAskingAndAWarningOffLoopback(t *testing.T) {
	port := strings.TrimPrefix(freePort(t), "127.0.0.1:")
	d := startDaemon(t, "--listen", "0.0.0.0:"+port)
	d.stop()
	log, err := os.ReadFile(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	warned := 0
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "non-loopback address without --tls-required") {
			warned++
			if !strings.Contains(l, ":"+port) {
				t.Errorf("the warning does not name the address: %s", l)
			}
		}
	}
	if warned != 1 {
		t.Errorf("%d warnings for 0.0.0.0:%s (and none for the harness's loopback %s), want 1:\n%s", warned, port, d.tcp, log)
	}
}

func TestAClientCAWithoutTLSRequiredIsRefused(t *testing.T) {
	pki := newCerttoolPKI(t)
	serveRefused(t, "(--tls-client-ca) needs --tls-required", "--data-dir", filepath.Join(tooltest.ShortDir(t), "pool"),
		"--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-client-ca", pki.caCert)
}

// pwriteScript writes a block through libnbd's Python bindings with the
// client-side checks off, so the server's answer shows.
const pwriteScript = `
import errno, nbd, sys
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri(sys.argv[1])
try:
    h.pwrite(b"\x5a" * 4096, 0)
except nbd.Error as e:
    print("refused errno", errno.errorcode.get(e.errno, e.errno), e.string)
    sys.exit(0)
if h.pread(4096, 0) != b"\x5a" * 4096:
    sys.exit("read back other data")
print("wrote and read back")
`

// pythonLibnbd is a python3 that has libnbd's bindings (python3-libnbd
// installs them for the system's python3).
func pythonLibnbd(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if p, err := exec.LookPath(py); err == nil && exec.Command(p, "-c", "import nbd").Run() == nil {
			return p
		}
	}
	t.Fatalf("no python3 with the nbd module: install %s", pkgPyLibnbd)
	return ""
}
