package test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thind-storage/thind/bm"
	thinddaemon "github.com/thind-storage/thind/daemon"
	"github.com/thind-storage/thind/internal/faultdev"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/tooltest"
)

// inProcess is a daemon run in the test's process, so that a fault
// device can sit under its metadata; the offline tools run as the thind
// binary does for an operator.
type inProcess struct {
	t      *testing.T
	cfg    thinddaemon.Config
	d      *thinddaemon.Daemon
	cancel context.CancelFunc
	done   chan error
}

func startInProcess(t *testing.T, cfg thinddaemon.Config) *inProcess {
	t.Helper()
	cfg.Listen = []string{"unix:" + filepath.Join(cfg.DataDir, "nbd.sock")}
	cfg.MetricsAddr = freePort(t)
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	d, err := thinddaemon.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	p := &inProcess{t: t, cfg: cfg, d: d, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- d.Run(ctx) }()
	t.Cleanup(p.stop)
	return p
}

func (p *inProcess) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	if err := <-p.done; err != nil {
		p.t.Errorf("Run: %v", err)
	}
}

func (p *inProcess) uri() string {
	return "nbd+unix:///default?socket=" + filepath.Join(p.cfg.DataDir, "nbd.sock")
}

// metric scrapes the daemon's /metrics over HTTP.
func (p *inProcess) metric(series string) float64 {
	p.t.Helper()
	resp, err := httpClient.Get("http://" + p.cfg.MetricsAddr + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("/metrics: %s", resp.Status)
	}
	body, _ := io.ReadAll(resp.Body)
	return metric(string(body), series)
}

const recoveryBlock = 64 << 10

// faultToReadOnly makes a pool, writes and flushes two blocks, then fails
// every metadata write but the superblock's: a third block's flush fails
// and the pool goes read-only with needs_check set, which status and
// metrics report. The daemon is then stopped.
func faultToReadOnly(t *testing.T) (dir string, check *pooltest.Pool) {
	dir = filepath.Join(tooltest.ShortDir(t), "pool")
	check = pooltest.CheckFile(t, filepath.Join(dir, "metadata"))
	var meta *faultdev.Device
	seed := randtest.Seed(t)
	p := startInProcess(t, thinddaemon.Config{DataDir: dir, DataSize: 256 << 20, MetadataSize: 16 << 20, DefaultSize: 64 << 20,
		WrapMetadata: func(dev bm.Device) bm.Device { meta = faultdev.New(dev, seed); return meta }})
	c := tooltest.DialNBD(t, p.uri())
	c.Want("ok", "write 0 %d 1", recoveryBlock)
	c.Want("ok", "write %d %d 5 fua", 5*recoveryBlock, recoveryBlock)
	c.Want("ok", "flush")
	meta.Inject(faultdev.Rule{Ops: faultdev.OpWrite, Off: bm.BlockSize})
	c.Want("ok", "write %d %d 9", 9*recoveryBlock, recoveryBlock)
	c.Want("err EIO", "flush")
	if s := p.d.Status(); s.Mode != "read-only" || !s.NeedsCheck {
		t.Fatalf("after the metadata fault: mode %s, needs_check %v", s.Mode, s.NeedsCheck)
	}
	if p.metric(`thind_pool_mode{mode="read-only"}`) != 1 || p.metric("thind_pool_needs_check") != 1 {
		t.Fatal("the metrics do not report read-only mode and needs_check")
	}
	c.Close()
	p.stop()
	return dir, check
}

// serveAndVerify starts the recovered pool: it must be in write mode
// without needs_check, hold every block acknowledged as durable (the
// third block was never: its flush failed), and take new writes.
func serveAndVerify(t *testing.T, dir string) {
	p := startInProcess(t, thinddaemon.Config{DataDir: dir})
	if s := p.d.Status(); s.Mode != "write" || s.NeedsCheck {
		t.Fatalf("the recovered pool: mode %s, needs_check %v", s.Mode, s.NeedsCheck)
	}
	c := tooltest.DialNBD(t, p.uri())
	c.Want("ok", "read 0 %d 1", recoveryBlock)
	c.Want("ok", "read %d %d 5", 5*recoveryBlock, recoveryBlock)
	c.Want("ok", "read %d %d 0", 9*recoveryBlock, recoveryBlock)
	c.Want("ok", "write %d %d 9", 9*recoveryBlock, recoveryBlock)
	c.Want("ok", "flush")
	c.Want("ok", "read %d %d 9", 9*recoveryBlock, recoveryBlock)
	c.Close()
}

// thindOK runs the thind binary and fails the test on a non-zero exit.
func thindOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := runThind(t, daemonEnv(), args...)
	if code != 0 {
		t.Fatalf("thind %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out + errOut
}

// checkReportsNeedsCheck runs `thind meta check` and thin_check on the
// stopped pool: both pass the metadata; thind's check and thin_dump
// report the flag.
func checkReportsNeedsCheck(t *testing.T, meta string) {
	t.Helper()
	if out := thindOK(t, "meta", "check", meta); !strings.Contains(out, "needs_check") {
		t.Fatalf("thind meta check does not report needs_check:\n%s", out)
	}
	out, errOut, err := tooltest.RunErr(t, "thin_check", pkgThinTools, meta)
	if err != nil {
		t.Fatalf("thin_check on the faulted pool: %v\n%s%s", err, out, errOut)
	}
	t.Logf("thin_check: %s%s", out, errOut)
	// thin_check 0.9.0 does not mention the flag; thin_dump shows it.
	if sb := strings.SplitN(tooltest.Run(t, "thin_dump", pkgThinTools, meta), "\n", 2)[0]; !strings.Contains(sb, `flags="1"`) {
		t.Fatalf("thin_dump does not show needs_check: %s", sb)
	}
}

// TestRecoveryWalkThrough walks the documented recovery of a pool sent
// read-only by a metadata fault, both ways: fault -> read-only -> stop ->
// check -> repair -> clear -> serve -> data verified, and the same with
// clear alone for metadata the check finds clean.
func TestRecoveryWalkThrough(t *testing.T) {
	t.Run("check, repair, clear, serve", func(t *testing.T) {
		dir, _ := faultToReadOnly(t)
		meta := filepath.Join(dir, "metadata")
		checkReportsNeedsCheck(t, meta)
		repaired := filepath.Join(dir, "metadata.repaired")
		if out := thindOK(t, "meta", "repair", "-i", meta, "-o", repaired); !strings.Contains(out, "repaired into") {
			t.Fatalf("thind meta repair: %s", out)
		}
		if out := thindOK(t, "meta", "check", repaired); strings.Contains(out, "needs_check") {
			t.Fatalf("the repaired metadata still has needs_check:\n%s", out)
		}
		if err := os.Rename(repaired, meta); err != nil {
			t.Fatal(err)
		}
		if out := thindOK(t, "pool", "clear-needs-check", "--data-dir", dir); !strings.Contains(out, "needs_check was not set") {
			t.Fatalf("thind pool clear-needs-check after repair: %s", out)
		}
		serveAndVerify(t, dir)
	})
	t.Run("check, clear, serve", func(t *testing.T) {
		dir, _ := faultToReadOnly(t)
		meta := filepath.Join(dir, "metadata")
		checkReportsNeedsCheck(t, meta)
		if out := thindOK(t, "pool", "clear-needs-check", "--data-dir", dir); !strings.Contains(out, "needs_check cleared") {
			t.Fatalf("thind pool clear-needs-check: %s", out)
		}
		if out := thindOK(t, "meta", "check", meta); strings.Contains(out, "needs_check") {
			t.Fatalf("needs_check still set after clear-needs-check:\n%s", out)
		}
		serveAndVerify(t, dir)
	})
}

// TestClearNeedsCheckRefusesDamagedMetadata: a check that finds errors
// leaves the flag set and exits 1, and a pool in use is refused.
func TestClearNeedsCheckRefusesDamagedMetadata(t *testing.T) {
	dir, check := faultToReadOnly(t)
	meta := filepath.Join(dir, "metadata")
	p := startInProcess(t, thinddaemon.Config{DataDir: dir})
	if _, errOut, code := runThind(t, daemonEnv(), "pool", "clear-needs-check", meta); code == 0 || !strings.Contains(errOut, "in use") {
		t.Fatalf("clear-needs-check on a pool in use: exit %d: %s", code, errOut)
	}
	p.stop()
	// Damage a btree node: everything past the superblock and the space
	// map roots is fair game; the check must see it.
	f, err := os.OpenFile(meta, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 16*bm.BlockSize)
	for i := range garbage {
		garbage[i] = 0xa5
	}
	if _, err := f.WriteAt(garbage, bm.BlockSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	check.Unchecked("btree nodes overwritten on purpose")
	out, errOut, code := runThind(t, daemonEnv(), "pool", "clear-needs-check", meta)
	if code != 1 || !strings.Contains(errOut, "needs_check left set") {
		t.Fatalf("clear-needs-check on damaged metadata: exit %d\n%s%s", code, out, errOut)
	}
	if out := thindOK(t, "meta", "check", "--super-block-only", meta); !strings.Contains(out, "needs_check") {
		t.Fatalf("the flag was cleared on damaged metadata:\n%s", out)
	}
}
