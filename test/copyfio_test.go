package test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thind-storage/thind/internal/tooltest"
)

func TestNBDCopyWithFourConnections(t *testing.T) {
	const size = 128 << 20
	d := startDaemon(t)
	d.mustCLI("volume", "create", "copy", "--size", "128M")
	dir := t.TempDir()
	src, back := filepath.Join(dir, "src.img"), filepath.Join(dir, "back.img")
	writeRandomImage(t, src, size, 4)

	connections := func() float64 { return metric(d.scrape(), "thind_nbd_connections_total") }
	before := connections()
	tooltest.Run(t, "nbdcopy", pkgLibnbd, "--connections=4", "--threads=4", "--flush", src, d.unixURI("copy"))
	if n := connections() - before; n < 4 {
		t.Errorf("nbdcopy --connections=4 opened %v connections: multi-conn not used", n)
	}
	tooltest.Run(t, "nbdcopy", pkgLibnbd, "--connections=4", "--threads=4", d.tcpURI("copy"), back)
	if out, errOut, err := tooltest.RunErr(t, "cmp", pkgDiffutils, src, back); err != nil {
		t.Fatalf("cmp: nbdcopy's round trip differs: %v\n%s%s", err, out, errOut)
	}
	s := d.scrape()
	for _, series := range []string{`thind_volume_requests_total{op="flush",volume="copy"}`, `thind_volume_requests_total{op="block_status",volume="copy"}`} {
		if metric(s, series) <= 0 {
			t.Errorf("%s is %v: nbdcopy did not flush or query block status", series, metric(s, series))
		}
	}
}

// fioResult is what the tests read of fio's JSON output.
type fioResult struct {
	Jobs []struct {
		Name  string `json:"jobname"`
		Error int    `json:"error"`
		Read  struct {
			Bytes int64 `json:"io_bytes"`
		} `json:"read"`
		Write struct {
			Bytes int64 `json:"io_bytes"`
		} `json:"write"`
	} `json:"jobs"`
}

func runFio(t *testing.T, args ...string) fioResult {
	t.Helper()
	out := tooltest.Run(t, "fio", pkgFio, append([]string{"--output-format=json"}, args...)...)
	var r fioResult
	// fio may print notes before the JSON.
	if i := strings.Index(out, "{"); i >= 0 {
		out = out[i:]
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("fio output: %v\n%s", err, out)
	}
	if len(r.Jobs) == 0 {
		t.Fatalf("fio ran no job:\n%s", out)
	}
	for _, j := range r.Jobs {
		if j.Error != 0 {
			t.Fatalf("fio job %s: error %d\n%s", j.Name, j.Error, out)
		}
	}
	return r
}

func TestFioVerifiesAtQueueDepth32OverUnixAndTCP(t *testing.T) {
	const size = 64 << 20
	d := startDaemon(t)
	if out := tooltest.Run(t, "fio", pkgFio, "--enghelp"); !strings.Contains(out, "nbd") {
		t.Fatalf("fio lacks the nbd engine: install a fio built with libnbd (Debian's fio package)\n%s", out)
	}
	for _, tc := range []struct{ name, vol, uri string }{
		{"over unix", "fio-unix", d.unixURI("fio-unix")},
		{"over TCP", "fio-tcp", d.tcpURI("fio-tcp")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.mustCLI("volume", "create", tc.vol, "--size", "64M")
			r := runFio(t, "--name=verify", "--ioengine=nbd", "--uri="+tc.uri,
				"--rw=randwrite", "--bs=4k", "--iodepth=32", "--size=64M",
				"--verify=crc32c", "--do_verify=1", "--verify_fatal=1")
			if w, rd := r.Jobs[0].Write.Bytes, r.Jobs[0].Read.Bytes; w != size || rd < size {
				t.Errorf("fio wrote %d and verified %d bytes, want %d", w, rd, size)
			}
			// Two jobs, so two connections, mixing 64 KiB reads and writes.
			runFio(t, "--name=mixed", "--ioengine=nbd", "--uri="+tc.uri,
				"--rw=randrw", "--bs=64k", "--iodepth=32", "--numjobs=2", "--size=32M")
		})
	}
	// Every write fio made is in the volume's counters.
	s := d.scrape()
	if w := metric(s, `thind_volume_bytes_total{op="write",volume="fio-unix"}`); w < size {
		t.Errorf("thind counted %v bytes written to fio-unix, fio wrote at least %d", w, size)
	}
}
