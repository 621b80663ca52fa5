package thinpool_test

import (
	"bytes"
	"os"
	"os/exec"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/metatools"
)

// checkMetadataFile runs thind's checker and the real thin_check on a
// metadata file nobody is writing, and returns thind's report.
func checkMetadataFile(t testing.TB, path string) *metatools.Report {
	t.Helper()
	img, err := metatools.OpenImage(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	r := metatools.Check(img, metatools.CheckOptions{})
	if !r.OK() || r.Warnings != 0 {
		var b bytes.Buffer
		r.WriteText(&b)
		t.Fatalf("thind check:\n%s", b.String())
	}
	tool, err := exec.LookPath("thin_check")
	if err != nil {
		t.Fatal("thin_check not found: install thin-provisioning-tools")
	}
	out, err := exec.Command(tool, path).CombinedOutput()
	if err != nil || bytes.Contains(bytes.ToLower(out), []byte("error")) || bytes.Contains(out, []byte("differ")) {
		t.Fatalf("thin_check: %v\n%s", err, out)
	}
	return r
}

// checkDurable checks what a power cut would leave of a memory metadata
// device.
func checkDurable(t testing.TB, dev *bm.MemDevice) *metatools.Report {
	t.Helper()
	buf := make([]byte, dev.Size())
	dev.CrashClone(0, nil).ReadAt(buf, 0)
	path := t.TempDir() + "/metadata"
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	return checkMetadataFile(t, path)
}

// commitAndCheck commits and checks the metadata file of an idle pool.
func (e *env) commitAndCheck() *metatools.Report {
	e.t.Helper()
	if err := e.pool.Commit(bg); err != nil {
		e.t.Fatal(err)
	}
	return checkMetadataFile(e.t, e.metaPath)
}
