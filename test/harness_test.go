package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/tooltest"
	"go.uber.org/goleak"
)

// The end-to-end tests drive the thind binary as a user does: `thind
// serve` in a subprocess on a temporary data directory, the CLI, and the
// real NBD clients, Prometheus and promtool against it. TestMain builds
// the binary once (with -race when the tests run with -race, so a data
// race in the daemon fails the test that provoked it).

// thindBin is the thind binary under test.
var thindBin string

// repoRoot is the module's root directory (the tests run in test/).
var repoRoot string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "thind-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if repoRoot, err = filepath.Abs(".."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The access tests run the CLI as another user.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	thindBin = filepath.Join(dir, "thind")
	args := []string{"build", "-o", thindBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/thind")...)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building thind: %v\n%s", err, out)
		return 1
	}
	code := pooltest.M(m).Run()
	httpClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines leaked: %v\n", err)
			return 1
		}
	}
	return code
}

// Debian packages of the tools the tests run.
const (
	pkgLibnbd     = "libnbd-bin"
	pkgPyLibnbd   = "python3-libnbd"
	pkgQemu       = "qemu-utils"
	pkgFio        = "fio"
	pkgPrometheus = "prometheus"
	pkgSystemd    = "systemd"
	pkgThinTools  = "thin-provisioning-tools"
	pkgDiffutils  = "diffutils"
	pkgGit        = "git"
)

// httpClient talks to thind's metrics and Prometheus: a hung server
// fails the test instead of hanging it.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// freePort returns a loopback TCP port nobody listens on now.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls cond every 20ms until it returns nil or the deadline
// passes, then fails the test with cond's last error.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, timeout, err)
		}
		<-tick.C
	}
}

// daemon is a `thind serve` subprocess on a temporary pool, listening on
// a unix socket, a free TCP port and a free metrics port. It can be
// stopped, killed and started again on the same pool.
type daemon struct {
	t       testing.TB
	base    string // holds the data dir and the log
	dir     string // --data-dir
	sock    string // NBD unix socket
	tcp     string // NBD HOST:PORT
	metrics string // metrics HOST:PORT
	args    []string
	logPath string
	netns   string // run in this network namespace, on tcp there (startDaemonIn)

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's result, once exited is closed
	http   *http.Client
}

// Small pool sizes keep the sparse files and the metadata cheap.
var smallPool = []string{"--data-size", "4G", "--default-size", "2G", "--metadata-size", "256M"}

// startDaemon starts thind on a new pool with smallPool sizes and extra
// serve flags; the test's end stops it (SIGTERM, exit status 0).
func startDaemon(t testing.TB, extra ...string) *daemon {
	t.Helper()
	d := newDaemon(t, extra...)
	d.start()
	return d
}

// newDaemon is startDaemon's daemon before its start.
func newDaemon(t testing.TB, extra ...string) *daemon {
	t.Helper()
	base := tooltest.ShortDir(t)
	d := &daemon{
		t:       t,
		base:    base,
		dir:     filepath.Join(base, "pool"),
		sock:    filepath.Join(base, "nbd.sock"),
		logPath: filepath.Join(base, "thind.log"),
		args:    append(append([]string{}, smallPool...), extra...),
	}
	d.http = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", filepath.Join(d.dir, "control.sock"))
		},
	}}
	// Registered before the stop below, so it runs after it: the pool
	// the daemon leaves is checked by thind's checker and thin_check.
	pooltest.CheckFile(t, d.metadataPath())
	t.Cleanup(func() {
		if d.running() {
			d.stop()
		}
		d.http.CloseIdleConnections()
		if t.Failed() {
			d.logTail(60)
		}
	})
	return d
}

// metadataPath is the daemon's metadata device: --metadata-device if its
// arguments give one, else the file thind makes in the data directory.
func (d *daemon) metadataPath() string {
	for i, a := range d.args {
		if a == "--metadata-device" && i+1 < len(d.args) {
			return d.args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--metadata-device="); ok {
			return v
		}
	}
	return filepath.Join(d.dir, "metadata")
}

func (d *daemon) running() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// start runs `thind serve` on the pool and waits until its control API
// and metrics answer. A port another process took meanwhile is replaced.
func (d *daemon) start() {
	d.t.Helper()
	for attempt := 0; ; attempt++ {
		if d.netns == "" && (d.tcp == "" || attempt > 0) {
			d.tcp, d.metrics = freePort(d.t), freePort(d.t)
		}
		err := d.tryStart()
		if err == nil {
			return
		}
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			d.t.Logf("retrying with other ports: %v", err)
			continue
		}
		d.t.Fatalf("thind serve did not start: %v", err)
	}
}

func (d *daemon) tryStart() error {
	logf, err := os.OpenFile(d.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== thind serve (%s)\n", time.Now().Format(time.RFC3339Nano))
	args := append([]string{"serve", "--data-dir", d.dir,
		"--listen", "unix:" + d.sock, "--listen", d.tcp,
		"--metrics-addr", d.metrics, "--log-level", "debug"}, d.args...)
	cmd := exec.Command(thindBin, args...)
	if d.netns != "" {
		// ip execs thind in the namespace: the pid stays thind's.
		cmd = exec.Command("ip", append([]string{"netns", "exec", d.netns, thindBin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = daemonEnv()
	if err := cmd.Start(); err != nil {
		return err
	}
	d.cmd, d.exited = cmd, make(chan struct{})
	go func() {
		d.err = cmd.Wait()
		close(d.exited)
	}()
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("exited (%v) before it was ready: %s", d.err, d.lastLines(5))
		case <-tick.C:
		}
		if d.ready() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			d.kill()
			return fmt.Errorf("not ready after a minute: %v", d.ready())
		}
	}
}

// ready reports whether the control API and the metrics endpoint answer.
func (d *daemon) ready() error {
	var st struct{ Mode string }
	if err := d.control("GET", "/v1/pool", nil, &st); err != nil {
		return err
	}
	if d.netns != "" {
		return nil // its metrics port is in its namespace, out of reach
	}
	resp, err := httpClient.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("metrics: %s", resp.Status)
	}
	return nil
}

// daemonEnv is the environment for thind: the test's, without a systemd
// notify socket the test itself may have been given, and without the
// race detector's one-second sleep at exit (each CLI call would pay it).
func daemonEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "NOTIFY_SOCKET=") && !strings.HasPrefix(e, "THIND_DATA_DIR=") && !strings.HasPrefix(e, "GORACE=") {
			env = append(env, e)
		}
	}
	return append(env, "GORACE=atexit_sleep_ms=0")
}

// control calls the control API; a status of 300 or more is an error.
func (d *daemon) control(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://thind"+path, rd)
	if err != nil {
		return err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// stop sends SIGTERM and checks that thind exits with status 0 in time.
func (d *daemon) stop() {
	d.t.Helper()
	if !d.running() {
		d.t.Fatalf("thind is not running (it exited with %v): %s", d.err, d.lastLines(5))
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(time.Minute):
		d.kill()
		d.t.Fatal("thind did not exit within a minute of SIGTERM")
	}
	if d.err != nil {
		d.t.Errorf("thind serve exited with %v after SIGTERM, want status 0: %s", d.err, d.lastLines(5))
	}
	d.checkLog()
}

// kill sends SIGKILL and waits for the process to go.
func (d *daemon) kill() {
	d.t.Helper()
	d.cmd.Process.Kill()
	<-d.exited
	d.checkLog()
}

// checkLog fails the test on a data race the daemon reported.
func (d *daemon) checkLog() {
	d.t.Helper()
	b, _ := os.ReadFile(d.logPath)
	if bytes.Contains(b, []byte("WARNING: DATA RACE")) {
		d.t.Errorf("thind reported a data race:\n%s", b)
	}
}

// lastLines returns the log's last n lines.
func (d *daemon) lastLines(n int) string {
	f, err := os.Open(d.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

func (d *daemon) logTail(n int) {
	d.t.Logf("last lines of the thind log %s:\n%s", d.logPath, d.lastLines(n))
}

// unixURI and tcpURI name a volume for libnbd, qemu and fio.
func (d *daemon) unixURI(vol string) string {
	return fmt.Sprintf("nbd+unix:///%s?socket=%s", vol, d.sock)
}

func (d *daemon) tcpURI(vol string) string { return fmt.Sprintf("nbd://%s/%s", d.tcp, vol) }

// cli runs the thind CLI against this daemon's pool (THIND_DATA_DIR) and
// returns stdout, stderr and the exit status.
func (d *daemon) cli(args ...string) (string, string, int) {
	d.t.Helper()
	return runThind(d.t, append(daemonEnv(), "THIND_DATA_DIR="+d.dir), args...)
}

// mustCLI runs the CLI and fails the test on a non-zero exit.
func (d *daemon) mustCLI(args ...string) string {
	d.t.Helper()
	out, errOut, code := d.cli(args...)
	if code != 0 {
		d.t.Fatalf("thind %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// runThind runs the thind binary with env.
func runThind(t testing.TB, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tooltest.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, thindBin, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), tooltest.ExitStatus(t, err)
}

// volumeJSON is a volume as `thind volume list --json` prints it.
type volumeJSON struct {
	Name        string `json:"name"`
	DevID       uint64 `json:"dev_id"`
	Size        uint64 `json:"size"`
	Origin      string `json:"origin"`
	ReadOnly    bool   `json:"read_only"`
	MappedBytes uint64 `json:"mapped_bytes"`
	Connections int    `json:"connections"`
}

// volumes lists the volumes through the CLI.
func (d *daemon) volumes() []volumeJSON {
	d.t.Helper()
	var vols []volumeJSON
	out := d.mustCLI("volume", "list", "--json")
	if err := json.Unmarshal([]byte(out), &vols); err != nil {
		d.t.Fatalf("volume list --json: %v\n%s", err, out)
	}
	return vols
}

// volume shows one volume through the CLI.
func (d *daemon) volume(name string) volumeJSON {
	d.t.Helper()
	var v volumeJSON
	out := d.mustCLI("volume", "show", name)
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		d.t.Fatalf("volume show: %v\n%s", err, out)
	}
	return v
}

// scrape returns the daemon's /metrics text.
func (d *daemon) scrape() string {
	d.t.Helper()
	resp, err := httpClient.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		d.t.Fatalf("GET /metrics: %s %v", resp.Status, err)
	}
	return string(b)
}

// metric returns the value of one series in a scrape (the exact series
// text, labels in exposition order, e.g. `thind_nbd_connections_total`),
// or -1 if absent.
func metric(scrape, series string) float64 {
	for _, line := range strings.Split(scrape, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return -1
}
