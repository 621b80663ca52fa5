package daemon_test

import (
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/daemon"
	"github.com/thind-storage/thind/internal/faultdev"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/tooltest"
	"github.com/thind-storage/thind/thinpool"
)

// faulty is a daemon with fault injection under both of its devices.
type faulty struct {
	*running
	meta *faultdev.Device
	data *faultdev.Backend
	log  *tooltest.LockedBuffer
}

func startFaulty(t *testing.T, cfg daemon.Config) *faulty {
	t.Helper()
	f := &faulty{log: &tooltest.LockedBuffer{}}
	seed := randtest.Seed(t)
	cfg.WrapMetadata = func(dev bm.Device) bm.Device { f.meta = faultdev.New(dev, seed); return f.meta }
	cfg.WrapData = func(b blk.Backend) blk.Backend { f.data = faultdev.NewBackend(b, seed); return f.data }
	cfg.Logger = slog.New(slog.NewTextHandler(f.log, nil))
	f.running = start(t, cfg)
	return f
}

func (f *faulty) uri() string {
	return "nbd+unix:///default?socket=" + filepath.Join(f.cfg.DataDir, "nbd.sock")
}

func (f *faulty) status() control.PoolStatus {
	f.t.Helper()
	var s control.PoolStatus
	if code := f.call("GET", "/v1/pool", "", &s); code != 200 {
		f.t.Fatalf("pool status: %d", code)
	}
	return s
}

const blockBytes = 64 << 10

// TestDataFaultsFailOnlyTheirRequests injects one failed read, write and
// flush under a serving daemon: over one libnbd connection, exactly the
// affected request gets EIO, the next identical one succeeds, the pool
// stays in write mode, and the metrics count each error.
func TestDataFaultsFailOnlyTheirRequests(t *testing.T) {
	cfg := smallConfig(t)
	pooltest.CheckFile(t, filepath.Join(cfg.DataDir, "metadata"))
	f := startFaulty(t, cfg)
	c := tooltest.DialNBD(t, f.uri())
	c.Want("ok", "write 0 %d 1", blockBytes)
	c.Want("ok", "write %d %d 2", blockBytes, blockBytes)
	c.Want("ok", "flush")

	f.data.Inject(faultdev.Rule{Ops: faultdev.OpRead, Count: 1})
	c.Want("err EIO", "read 0 %d 1", blockBytes)
	c.Want("ok", "read 0 %d 1", blockBytes)
	c.Want("ok", "read %d %d 2", blockBytes, blockBytes)

	f.data.Inject(faultdev.Rule{Ops: faultdev.OpWrite, Count: 1})
	c.Want("err EIO", "write 0 %d 3", blockBytes)
	c.Want("ok", "read 0 %d 1", blockBytes)
	c.Want("ok", "write 0 %d 3", blockBytes)
	c.Want("ok", "read 0 %d 3", blockBytes)

	f.data.Inject(faultdev.Rule{Ops: faultdev.OpFlush, Count: 1})
	c.Want("err EIO", "flush")
	c.Want("ok", "flush")

	if s := f.status(); s.Mode != "write" || s.NeedsCheck {
		t.Fatalf("after data faults: mode %s, needs_check %v", s.Mode, s.NeedsCheck)
	}
	for op, want := range map[string]float64{"read": 1, "write": 1, "flush": 1} {
		if got := f.d.MetricsForTest("thind_dispatch_errors_total", `op="`+op+`"`); got != want {
			t.Errorf("thind_dispatch_errors_total{op=%q} = %v, want %v", op, got, want)
		}
	}
	if got := f.d.MetricsForTest("thind_volume_errors_total", `errno="EIO"`, `volume="default"`); got != 3 {
		t.Errorf("EIO replies counted: %v, want 3", got)
	}
	if got := f.d.MetricsForTest("thind_pool_metadata_errors_total"); got != 0 {
		t.Errorf("%v metadata errors after data faults", got)
	}
}

// TestMetadataFaultThenOnlineRecovery fails the metadata writes of a
// serving daemon: the pool goes read-only with needs_check, and the
// status, the metrics and the log say so; reads go on. Write mode is
// refused while the flag is set; once the fault is fixed, `set-mode
// write --check` checks the metadata on disk, clears the flag and the
// pool takes new writes again.
func TestMetadataFaultThenOnlineRecovery(t *testing.T) {
	cfg := smallConfig(t)
	pooltest.CheckFile(t, filepath.Join(cfg.DataDir, "metadata"))
	f := startFaulty(t, cfg)
	c := tooltest.DialNBD(t, f.uri())
	c.Want("ok", "write 0 %d 1", blockBytes)
	c.Want("ok", "flush")

	f.meta.Inject(faultdev.Rule{Ops: faultdev.OpWrite, Off: bm.BlockSize}) // all but the superblock
	c.Want("ok", "write %d %d 2", 16*blockBytes, blockBytes)               // provisioned in core
	c.Want("err EIO", "flush")                                             // the commit fails
	s := f.status()
	if s.Mode != "read-only" || !s.NeedsCheck || !strings.Contains(s.ModeReason, "commit") {
		t.Fatalf("after a metadata write failure: mode %s (%s), needs_check %v", s.Mode, s.ModeReason, s.NeedsCheck)
	}
	for series, want := range map[string]float64{
		`thind_pool_mode{mode="read-only"}`: 1,
		"thind_pool_needs_check":            1,
		"thind_pool_metadata_errors_total":  1,
	} {
		name, label, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
		if got := f.d.MetricsForTest(name, label); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	log := f.log.String()
	for _, want := range []string{"metadata operation failed", "to=read-only"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
	c.Want("ok", "read 0 %d 1", blockBytes)
	c.Want("ok", "read %d %d 0", 16*blockBytes, blockBytes) // the aborted transaction's block
	c.Want("err EIO", "write %d %d 3", 32*blockBytes, blockBytes)

	var e control.ErrorBody
	if code := f.call("POST", "/v1/pool/mode", `{"mode":"write"}`, &e); code != 409 || !strings.Contains(e.Error, "check") {
		t.Fatalf("set-mode write with needs_check set: %d %s", code, e.Error)
	}
	f.meta.Heal()
	var m control.ModeAnswer
	if code := f.call("POST", "/v1/pool/mode", `{"mode":"write","check":true}`, &m); code != 200 || m.Pool.Mode != "write" || m.Pool.NeedsCheck {
		t.Fatalf("set-mode write --check: %d %+v", code, m)
	}
	if !strings.Contains(m.Check, "transaction") {
		t.Errorf("the check's report is missing: %q", m.Check)
	}
	c.Want("ok", "write %d %d 3", 32*blockBytes, blockBytes)
	c.Want("ok", "flush")
	c.Want("ok", "read %d %d 3", 32*blockBytes, blockBytes)
	c.Want("ok", "read 0 %d 1", blockBytes)
}

// TestADyingMetadataDeviceGoesReadOnlyThenFail: metadata writes fail, so
// the pool goes read-only; asking for write mode before the fault is
// fixed sends it back at the next commit (which fails again and sets
// needs_check again); once reads fail too, the next failure cannot even abort,
// and the pool fails: every request gets EIO, and the status and the
// metrics say fail.
func TestADyingMetadataDeviceGoesReadOnlyThenFail(t *testing.T) {
	cfg := smallConfig(t)
	pooltest.CheckFile(t, filepath.Join(cfg.DataDir, "metadata")).AllowNeedsCheck()
	f := startFaulty(t, cfg)
	c := tooltest.DialNBD(t, f.uri())
	c.Want("ok", "write 0 %d 1", blockBytes)
	c.Want("ok", "flush")
	f.meta.Inject(faultdev.Rule{Ops: faultdev.OpWrite, Off: bm.BlockSize})
	c.Want("ok", "write %d %d 2", 4*blockBytes, blockBytes)
	c.Want("err EIO", "flush")
	if s := f.status(); s.Mode != "read-only" || !s.NeedsCheck {
		t.Fatalf("after the first failure: mode %s, needs_check %v", s.Mode, s.NeedsCheck)
	}

	// Too early: the check passes and the superblock still takes the
	// cleared flag, but the next commit that needs other blocks fails.
	var m control.ModeAnswer
	if code := f.call("POST", "/v1/pool/mode", `{"mode":"write","check":true}`, &m); code != 200 || m.Pool.Mode != "write" {
		t.Fatalf("set-mode write --check: %d %+v", code, m)
	}
	c.Want("ok", "write %d %d 2", 4*blockBytes, blockBytes)
	c.Want("err EIO", "flush")
	if s := f.status(); s.Mode != "read-only" || !s.NeedsCheck {
		t.Fatalf("after write mode was tried too early: mode %s, needs_check %v", s.Mode, s.NeedsCheck)
	}
	c.Want("ok", "read 0 %d 1", blockBytes)

	var e control.ErrorBody
	f.meta.Inject(faultdev.Rule{Ops: faultdev.OpRead})
	f.call("POST", "/v1/pool/mode", `{"mode":"write","check":true}`, &e)
	c.Want("err EIO", "write %d %d 2", 8*blockBytes, blockBytes)
	c.Do("flush")
	if s := f.status(); s.Mode != "fail" {
		t.Fatalf("with the metadata device gone: mode %s (%s)", s.Mode, s.ModeReason)
	}
	if got := f.d.MetricsForTest("thind_pool_mode", `mode="fail"`); got != 1 {
		t.Errorf(`thind_pool_mode{mode="fail"} = %v`, got)
	}
	c.Want("err EIO", "read 0 %d 1", blockBytes)
	c.Want("err EIO", "write 0 %d 3", blockBytes)
	if !strings.Contains(f.log.String(), "to=fail") {
		t.Errorf("the log does not say the pool failed:\n%s", f.log.String())
	}
	c.Close()
	f.cancel()
	f.cancel = nil
	if err := <-f.done; !errors.Is(err, thinpool.ErrFailed) {
		t.Fatalf("stopping a failed pool: %v", err)
	}
}
