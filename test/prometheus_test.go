package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/tooltest"
)

// httpGet returns the body of a 200 answer.
func httpGet(u string) (string, error) {
	resp, err := httpClient.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return string(b), nil
}

// promServer is a Prometheus started by a test: it scrapes one thind
// every second and evaluates the deploy/ rules every second.
type promServer struct {
	t       *testing.T
	addr    string
	logPath string
	cmd     *exec.Cmd
	exited  chan error
}

func startPrometheus(t *testing.T, target, rules string) *promServer {
	t.Helper()
	bin := tooltest.Need(t, "prometheus", pkgPrometheus)
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: thind
    static_configs:
      - targets: ['%s']
`, rules, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &promServer{t: t, addr: freePort(t), logPath: filepath.Join(dir, "prometheus.log"), exited: make(chan error, 1)}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=info")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(p.stop)
	waitFor(t, "prometheus to be ready", time.Minute, func() error {
		select {
		case err := <-p.exited:
			p.exited <- err
			b, _ := os.ReadFile(p.logPath)
			t.Fatalf("prometheus exited (%v):\n%s", err, b)
		default:
		}
		_, err := httpGet("http://" + p.addr + "/-/ready")
		return err
	})
	return p
}

func (p *promServer) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			p.t.Errorf("prometheus exited with %v after SIGTERM", err)
		}
	case <-time.After(time.Minute):
		p.cmd.Process.Kill()
		<-p.exited
		p.t.Error("prometheus did not stop within a minute")
	}
	if p.t.Failed() {
		b, _ := os.ReadFile(p.logPath)
		p.t.Logf("prometheus log:\n%s", b)
	}
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) value() float64 {
	str, _ := s.Value[1].(string)
	v, _ := strconv.ParseFloat(str, 64)
	return v
}

// api calls the HTTP API and decodes its data; an error status is an
// error.
func (p *promServer) api(path string, data any) error {
	body, err := httpGet("http://" + p.addr + path)
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if jerr := json.Unmarshal([]byte(body), &r); jerr != nil {
		if err != nil {
			return err
		}
		return jerr
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", path, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}

// query runs an instant PromQL query.
func (p *promServer) query(expr string) ([]promSample, error) {
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	if err := p.api("/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: result type %s", expr, data.ResultType)
	}
	return data.Result, nil
}

// waitValue polls expr until it is one sample equal to want.
func (p *promServer) waitValue(expr string, want float64) {
	p.t.Helper()
	waitFor(p.t, expr, time.Minute, func() error {
		r, err := p.query(expr)
		if err != nil {
			return err
		}
		if len(r) != 1 || r[0].value() != want {
			return fmt.Errorf("got %v, want %v", r, want)
		}
		return nil
	})
}

func TestPrometheusScrapesThind(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "prom", "--size", "16M")
	p := startPrometheus(t, d.metrics, deployPath("prometheus", "thind-rules.yml"))

	// Write and read a known number of bytes through NBD.
	c := d.dial(t, "prom")
	written, read := 0, 0
	for i, n := range []int{1 << 20, 4096, 4096, 12345, 3 * 65536, 1} {
		buf := make([]byte, n)
		buf[0] = byte(i + 1)
		if err := c.pwrite(buf, uint64(i)*(2<<20)+uint64(i*777), 0); err != nil {
			t.Fatal(err)
		}
		written += n
	}
	for _, n := range []int{512, 65536, 7} {
		if err := c.pread(make([]byte, n), 4096); err != nil {
			t.Fatal(err)
		}
		read += n
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	p.waitValue(`up{job="thind"}`, 1)
	p.waitValue(`thind_volume_bytes_total{job="thind",op="write",volume="prom"}`, float64(written))
	p.waitValue(`thind_volume_bytes_total{op="read",volume="prom"}`, float64(read))
	p.waitValue(`sum(thind_volume_requests_total{volume="prom",op=~"write|read|flush"})`, 6+3+1)
	p.waitValue(`thind_volume_size_bytes{volume="prom"}`, 16<<20)
	t.Logf("Prometheus sees the %d bytes written and %d read", written, read)

	// A send and a receive, for the replication panels.
	d.mustCLI("volume", "snapshot", "prom", "prom-s0")
	stream := filepath.Join(t.TempDir(), "s0.stream")
	d.mustCLI("volume", "send", "prom-s0", "-o", stream)
	st, err := os.Stat(stream)
	if err != nil {
		t.Fatal(err)
	}
	d.mustCLI("volume", "receive", "prom-r0", "-i", stream)
	p.waitValue(`thind_send_bytes_total{job="thind"}`, float64(st.Size()))
	p.waitValue(`thind_receive_bytes_total{job="thind"}`, float64(st.Size()))
	p.waitValue(`thind_sends_total - thind_sends_failed_total + thind_receives_total - thind_receives_failed_total`, 2)
	t.Logf("Prometheus sees a %d-byte stream sent and received", st.Size())

	// The deploy rules load, evaluate without error on real data, and
	// nothing alerts on a healthy pool.
	type rule struct {
		Name      string `json:"name"`
		Query     string `json:"query"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
		Type      string `json:"type"`
	}
	var rules []rule
	waitFor(t, "every rule to be evaluated", time.Minute, func() error {
		var data struct {
			Groups []struct {
				Rules []rule `json:"rules"`
			} `json:"groups"`
		}
		if err := p.api("/api/v1/rules", &data); err != nil {
			return err
		}
		rules = nil
		for _, g := range data.Groups {
			rules = append(rules, g.Rules...)
		}
		if want := ruleCount(t); len(rules) != want {
			return fmt.Errorf("%d rules loaded, want %d", len(rules), want)
		}
		for _, r := range rules {
			if r.Health != "ok" {
				return fmt.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
			}
		}
		return nil
	})
	// (Before the first scrape absent(up) holds: ThindNotScraped may be
	// pending for a moment, then must go.)
	waitFor(t, "no alert on a healthy pool", 30*time.Second, func() error {
		var alerts struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		}
		if err := p.api("/api/v1/alerts", &alerts); err != nil {
			return err
		}
		if len(alerts.Alerts) != 0 {
			return fmt.Errorf("alerts: %+v", alerts.Alerts)
		}
		return nil
	})
	exported := metricFamilies(d.scrape())
	var ruleExprs []string
	for _, r := range rules {
		ruleExprs = append(ruleExprs, r.Query)
	}
	checkMetricNames(t, "thind-rules.yml", ruleExprs, exported)

	// Every dashboard query is valid PromQL on this Prometheus, and the
	// pool and throughput panels show data.
	// rate() needs two samples of the series.
	p.waitValue(`count_over_time(thind_volume_bytes_total{volume="prom",op="write"}[1m]) >= bool 2`, 1)
	p.waitValue(`count_over_time(thind_send_bytes_total[1m]) >= bool 2`, 1)
	vars := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*", "$volume", ".*")
	for _, e := range dashboardExprs(t, deployPath("grafana", "thind-dashboard.json")) {
		r, err := p.query(vars.Replace(e))
		if err != nil {
			t.Errorf("dashboard query %q: %v", e, err)
			continue
		}
		if (strings.Contains(e, "thind_pool_data_blocks_used") || strings.Contains(e, "thind_volume_bytes_total") ||
			strings.Contains(e, "thind_send_") || strings.Contains(e, "thind_receive")) && len(r) == 0 {
			t.Errorf("dashboard query %q: no data", e)
		}
	}
}
