package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/tooltest"
)

// The files of deploy/, checked with the tools that consume them.

func deployPath(parts ...string) string {
	return filepath.Join(append([]string{repoRoot, "deploy"}, parts...)...)
}

// ruleCount counts the rules of deploy/prometheus/thind-rules.yml, the
// one place that says how many there are.
func ruleCount(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(deployPath("prometheus", "thind-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n      - alert: ") + strings.Count(string(b), "\n      - record: ")
}

func TestPromtoolAcceptsTheDeployConfigAndRules(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "config", deployPath("prometheus", "prometheus.yml")}, "is valid prometheus config file syntax"},
		{[]string{"check", "rules", deployPath("prometheus", "thind-rules.yml")}, fmt.Sprintf("SUCCESS: %d rules found", ruleCount(t))},
		{[]string{"test", "rules", deployPath("prometheus", "thind-rules.test.yml")}, "SUCCESS"},
	} {
		out, errOut, err := tooltest.RunErr(t, "promtool", pkgPrometheus, tc.args...)
		if err != nil || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("promtool %s: %v\n%s%s", strings.Join(tc.args, " "), err, out, errOut)
		}
	}
}

func TestSystemdAnalyzeVerifiesTheUnit(t *testing.T) {
	unit, err := os.ReadFile(deployPath("thind.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nType=notify\n", "\nExecStart=/usr/local/bin/thind serve ", "\nProtectSystem=strict\n",
		"\nReadWritePaths=/var/lib/thind\n", "\nNoNewPrivileges=yes\n", "\nRestart=on-failure\n", "\nLimitNOFILE="} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("thind.service lacks %q", strings.TrimSpace(want))
		}
	}
	// verify checks that ExecStart's binary exists: point it at the one
	// under test.
	dir := t.TempDir()
	path := filepath.Join(dir, "thind.service")
	fixed := strings.ReplaceAll(string(unit), "/usr/local/bin/thind", thindBin)
	if err := os.WriteFile(path, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := tooltest.RunErr(t, "systemd-analyze", pkgSystemd, "verify", path)
	if err != nil || out+errOut != "" {
		t.Errorf("systemd-analyze verify thind.service: %v\n%s%s", err, out, errOut)
	}
}

// readEnvFile reads KEY=VALUE lines, skipping comments.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", path, line)
		}
		env[k] = v
	}
	return env
}

// TestTheUnitsCommandLineServesAndNotifiesReady runs the unit's
// ExecStart with thind.env's options (the data directory and ports moved
// to the test's), as systemd would with Type=notify: READY=1 must come
// on NOTIFY_SOCKET once the daemon answers, and SIGTERM must end it with
// status 0.
func TestTheUnitsCommandLineServesAndNotifiesReady(t *testing.T) {
	env := readEnvFile(t, deployPath("thind.env"))
	base := tooltest.ShortDir(t)
	dataDir := filepath.Join(base, "lib")
	nbdAddr, metricsAddr := freePort(t), freePort(t)
	opts := strings.NewReplacer("/var/lib/thind", dataDir, "127.0.0.1:10809", nbdAddr, "127.0.0.1:9810", metricsAddr).Replace(env["THIND_OPTS"])
	if env["THIND_DATA_DIR"] != "/var/lib/thind" || opts == env["THIND_OPTS"] {
		t.Fatalf("thind.env: THIND_DATA_DIR=%q THIND_OPTS=%q", env["THIND_DATA_DIR"], env["THIND_OPTS"])
	}

	notify := filepath.Join(base, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// ExecStart=/usr/local/bin/thind serve --data-dir ${THIND_DATA_DIR} $THIND_OPTS
	args := append([]string{"serve", "--data-dir", dataDir}, strings.Fields(opts)...)
	cmd := exec.Command(thindBin, args...)
	cmd.Env = append(daemonEnv(), "NOTIFY_SOCKET="+notify)
	logPath := filepath.Join(base, "thind.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("thind log:\n%s", b)
		}
	}()

	conn.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 4096)
	n, _, err := conn.ReadFromUnix(buf)
	if err != nil {
		t.Fatalf("no notification on NOTIFY_SOCKET: %v", err)
	}
	if got := string(buf[:n]); got != "READY=1" {
		t.Fatalf("notification %q, want READY=1", got)
	}
	// Ready means ready: the control API, NBD and the metrics answer at
	// once, without polling.
	out, errOut, code := runThind(t, append(daemonEnv(), "THIND_DATA_DIR="+dataDir), "pool", "status", "--json")
	if code != 0 {
		t.Fatalf("pool status right after READY=1: %s", errOut)
	}
	var st struct {
		Mode      string `json:"mode"`
		DataBytes uint64 `json:"data_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Mode != "write" || st.DataBytes != 64<<30 {
		t.Errorf("pool status %+v (%v), want write mode and the 64G of thind.env", st, err)
	}
	tooltest.Run(t, "nbdinfo", pkgLibnbd, "--can", "connect", "nbd://"+nbdAddr+"/default")
	tooltest.Run(t, "nbdinfo", pkgLibnbd, "--can", "connect", "nbd+unix:///default?socket="+filepath.Join(dataDir, "nbd.sock"))
	resp, err := httpGet("http://" + metricsAddr + "/metrics")
	if err != nil || !strings.Contains(resp, "thind_pool_data_blocks ") {
		t.Errorf("metrics right after READY=1: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("thind exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("thind did not exit within a minute of SIGTERM")
	}
	// The log is JSON, as thind.env asks.
	b, _ := os.ReadFile(logPath)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
			break
		}
	}
}

// metricFamilies returns the metric names a scrape exposes, with the
// _bucket, _sum and _count series of histograms and summaries.
func metricFamilies(scrape string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(scrape, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		names[f[2]] = true
		if f[3] == "histogram" || f[3] == "summary" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f[2]+s] = true
			}
		}
	}
	return names
}

var (
	promString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promName   = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// thindMetricNames returns the thind_ metric names in a PromQL
// expression (label values, in quotes, are skipped).
func thindMetricNames(expr string) []string {
	var out []string
	for _, tok := range promName.FindAllString(promString.ReplaceAllString(expr, `""`), -1) {
		if strings.HasPrefix(tok, "thind_") {
			out = append(out, tok)
		}
	}
	return out
}

// dashboardExprs returns every PromQL expression of a Grafana dashboard:
// the panels' targets and the query variables (label_values(SELECTOR,
// label) gives SELECTOR).
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s is not valid dashboard JSON: %v", path, err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("%s: title %q, uid %q, %d panels", path, dash.Title, dash.UID, len(dash.Panels))
	}
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has an empty expression", p.Title)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_]+\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query %s: %v", v.Name, v.Query, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(SELECTOR, label)", v.Name, q.Query)
		}
		exprs = append(exprs, m[1])
	}
	return exprs
}

// activeDaemon is a daemon whose metrics show every family: a volume
// with an open connection that wrote, read, flushed, trimmed and got an
// error, and a failed handshake.
func activeDaemon(t *testing.T) (*daemon, *nbdClient) {
	t.Helper()
	d := startDaemon(t)
	d.mustCLI("volume", "create", "vol", "--size", "16M")
	c := d.dial(t, "vol")
	buf := make([]byte, 64<<10)
	for _, err := range []error{c.pwrite(buf, 0, 0), c.pwrite(buf, 1<<20, nbdFlagFUA), c.pread(buf, 0), c.flush(), c.trim(0, 64<<10)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.pread(buf, 16<<20); err == nil {
		t.Fatal("a read past the end succeeded")
	}
	nc, err := net.Dial("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	waitFor(t, "the failed handshake to be counted", 10*time.Second, func() error {
		if !strings.Contains(d.scrape(), "thind_nbd_handshake_failures_total{") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	return d, c
}

func TestDashboardAndRulesNameOnlyMetricsThindExports(t *testing.T) {
	d, _ := activeDaemon(t)
	scrape := d.scrape()

	// promtool's lint of the exposition: names, help, units, types.
	cmd := exec.Command(tooltest.Need(t, "promtool", pkgPrometheus), "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("promtool check metrics on thind's /metrics: %v\n%s", err, out)
	}

	exported := metricFamilies(scrape)
	var thindFamilies []string
	for name := range exported {
		if strings.HasPrefix(name, "thind_") {
			thindFamilies = append(thindFamilies, name)
		}
	}
	slices.Sort(thindFamilies)
	t.Logf("thind exports %d thind_ names", len(thindFamilies))
	dash := dashboardExprs(t, deployPath("grafana", "thind-dashboard.json"))
	used := checkMetricNames(t, "thind-dashboard.json", dash, exported)
	t.Logf("the dashboard has %d expressions using %d of the names", len(dash), len(used))
	// (The rules are checked the same way in TestPrometheusScrapesThind,
	// on the expressions Prometheus itself parsed from the file.)
}

// checkMetricNames fails the test on an expression that names a thind_
// metric not in exported, or no thind metric (nor up) at all; it returns
// the names used.
func checkMetricNames(t *testing.T, file string, exprs []string, exported map[string]bool) map[string]bool {
	t.Helper()
	used := map[string]bool{}
	for _, e := range exprs {
		names := thindMetricNames(e)
		if len(names) == 0 && !strings.Contains(e, "up{") {
			t.Errorf("%s: %q names no thind metric", file, e)
		}
		for _, n := range names {
			used[n] = true
			if !exported[n] {
				t.Errorf("%s: %q uses %s, which thind does not export", file, e, n)
			}
		}
	}
	return used
}
