// Package pooltest is the harness every test that makes a thin pool goes
// through, as bbolt's btesting is for its databases: the pool is
// registered where it is made, and when the test ends its cleanup closes
// (and so commits) what the test left open, then runs thind's checker
// (metatools.Check: no error, no warning) and Debian's thin_check (exit 0,
// nothing reported) on the metadata as it is on disk.
//
// The constructors register what they make: CreateMetadata and
// OpenMetadata for the metadata format, OpenEngine for the engine over it.
// Pools made by code the test drives (Restore, Repair, a daemon, the thind
// binary) are registered with CheckFile or CheckDevice before that code
// runs. A test that leaves a pool damaged on purpose says so with
// Unchecked and a reason; one that leaves needs_check set on purpose says
// AllowNeedsCheck.
//
// Cleanups run last registered first, so a pool registered before the
// handles and servers over it is checked after they are closed. M wraps a
// package's testing.M: at the end of the run it prints how many pools were
// made, checked and left unchecked, and fails the run if any pool escaped
// its check. test/pools_test.go checks the other half: that no test makes
// a pool without this package.
package pooltest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/metatools"
)

// Pool is one registered pool: its metadata image and what must be closed
// before it is checked.
type Pool struct {
	name string
	path string    // the metadata file, or "" for a device in memory
	dev  bm.Device // the metadata device when it is not a file
	size int64     // bytes of dev to check

	mu         sync.Mutex
	closers    []func() error // open handles, closed (committing) before the check
	needsCheck bool
	unchecked  string // the reason, if left unchecked on purpose
}

// The run's counts, reported by M: every pool registered ends checked or
// left unchecked with a reason.
var counts struct {
	made, checked, unchecked atomic.Int64
}

// registry finds the Pool of a device or file that is already registered,
// so that reopening a pool does not register it twice.
var registry struct {
	mu    sync.Mutex
	pools map[any]*Pool
}

func lookup(key any) *Pool {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	return registry.pools[key]
}

// track registers a pool under key and checks it when t ends, unless it is
// registered already (a reopen), in which case the existing Pool is
// returned.
func track(t testing.TB, key any, p *Pool) *Pool {
	t.Helper()
	registry.mu.Lock()
	if registry.pools == nil {
		registry.pools = map[any]*Pool{}
	}
	if old := registry.pools[key]; old != nil {
		registry.mu.Unlock()
		return old
	}
	registry.pools[key] = p
	registry.mu.Unlock()
	counts.made.Add(1)
	t.Cleanup(func() {
		registry.mu.Lock()
		delete(registry.pools, key)
		registry.mu.Unlock()
		p.finish(t)
	})
	return p
}

// CheckFile registers the metadata file at path, made or changed by code
// the test drives (a restore, a repair, a daemon, the thind binary), to be
// checked when t ends. Register it before starting that code, so that its
// own cleanup (stopping a daemon) runs first.
func CheckFile(t testing.TB, path string) *Pool {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return track(t, abs, &Pool{name: abs, path: abs})
}

// CheckDevice registers a metadata device of size bytes to be checked when
// t ends. A file (*os.File) is checked by its path; any other device is
// copied to a temporary file first.
func CheckDevice(t testing.TB, dev bm.Device, size int64) *Pool {
	t.Helper()
	if f, ok := dev.(*os.File); ok {
		return CheckFile(t, f.Name())
	}
	return track(t, dev, &Pool{name: fmt.Sprintf("%T %p", dev, dev), dev: dev, size: size})
}

// Unchecked leaves p unchecked, for a test that damages it on purpose; the
// reason is logged and counted.
func (p *Pool) Unchecked(reason string) {
	if reason == "" {
		panic("pooltest: Unchecked needs a reason")
	}
	p.mu.Lock()
	p.unchecked = reason
	p.mu.Unlock()
}

// AllowNeedsCheck accepts the needs_check flag (and thind's warning about
// it) on p, for a test that leaves a pool after a metadata failure.
func (p *Pool) AllowNeedsCheck() {
	p.mu.Lock()
	p.needsCheck = true
	p.mu.Unlock()
}

// closeFirst adds a handle to close before p is checked.
func (p *Pool) closeFirst(close func() error) {
	p.mu.Lock()
	p.closers = append(p.closers, close)
	p.mu.Unlock()
}

// finish closes what is left open on p and checks it.
func (p *Pool) finish(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	closers, reason, needsCheck := p.closers, p.unchecked, p.needsCheck
	p.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i](); err != nil && reason == "" {
			t.Errorf("pooltest: closing %s before its check: %v", p.name, err)
		}
	}
	if reason != "" {
		counts.unchecked.Add(1)
		t.Logf("pooltest: %s left unchecked: %s", p.name, reason)
		return
	}
	counts.checked.Add(1)
	path := p.path
	if path == "" {
		dir, err := os.MkdirTemp("", "pooltest")
		if err != nil {
			t.Errorf("pooltest: %v", err)
			return
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "metadata")
		if err := copyDevice(path, p.dev, p.size); err != nil {
			t.Errorf("pooltest: copying %s: %v", p.name, err)
			return
		}
	}
	if _, err := Check(path, needsCheck); err != nil {
		t.Errorf("pooltest: %s: %v", p.name, err)
	}
}

func copyDevice(path string, dev bm.Device, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, io.NewSectionReader(dev, 0, size)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Check runs thind's checker and thin_check on the metadata file at path,
// nobody writing it, and returns thind's report; with needsCheck the
// needs_check flag is accepted.
func Check(path string, needsCheck bool) (*metatools.Report, error) {
	img, err := metatools.OpenImage(path)
	if err != nil {
		return nil, fmt.Errorf("thind check: %w", err)
	}
	r := metatools.Check(img, metatools.CheckOptions{})
	img.Close()
	if !r.OK() || r.Warnings > allowedWarnings(r, needsCheck) {
		var b bytes.Buffer
		r.WriteText(&b)
		return r, fmt.Errorf("thind check:\n%s", b.String())
	}
	return r, thinCheck(path)
}

// CheckNow checks the metadata file at path at once (both checkers), for a
// test that looks at a pool mid-way, failing t on a fault; it returns
// thind's report for the test's own assertions.
func CheckNow(t testing.TB, path string) *metatools.Report {
	t.Helper()
	r, err := Check(path, false)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// CheckDeviceNow is CheckNow for size bytes of a device.
func CheckDeviceNow(t testing.TB, dev bm.Device, size int64) *metatools.Report {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "metadata")
	if err := copyDevice(path, dev, size); err != nil {
		t.Fatal(err)
	}
	return CheckNow(t, path)
}

// allowedWarnings counts the warnings the caller accepts: the needs_check
// flag's.
func allowedWarnings(r *metatools.Report, needsCheck bool) int {
	n := 0
	for _, f := range r.Faults {
		if needsCheck && f.Severity == metatools.SeverityWarning && f.Fault == "the needs_check flag is set" {
			n++
		}
	}
	return n
}

// thinCheck runs thin_check, which must exit 0 and report nothing.
func thinCheck(path string) error {
	tool, err := exec.LookPath("thin_check")
	if err != nil {
		return errors.New("thin_check not found: install thin-provisioning-tools (test/run does)")
	}
	out, err := exec.Command(tool, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("thin_check: %v\n%s", err, out)
	}
	lower := bytes.ToLower(out)
	for _, bad := range []string{"error", "warning", "differ", "missing"} {
		if bytes.Contains(lower, []byte(bad)) {
			return fmt.Errorf("thin_check reported problems:\n%s", out)
		}
	}
	return nil
}

// M wraps a package's testing.M: Run runs the tests, then reports the
// pools they made and fails the run if one escaped its check. Use it as
// goleak.VerifyTestMain(pooltest.M(m)) or os.Exit(pooltest.M(m).Run()).
func M(m *testing.M) interface{ Run() int } { return mainRun{m} }

type mainRun struct{ m *testing.M }

func (r mainRun) Run() int {
	code := r.m.Run()
	made, checked, unchecked := counts.made.Load(), counts.checked.Load(), counts.unchecked.Load()
	if made == 0 {
		return code
	}
	fmt.Fprintf(os.Stderr, "pooltest: %d pools made, %d checked by thind's checker and thin_check, %d left unchecked on purpose\n",
		made, checked, unchecked)
	if made != checked+unchecked && code == 0 {
		fmt.Fprintf(os.Stderr, "pooltest: %d pools were never checked\n", made-checked-unchecked)
		return 1
	}
	return code
}
