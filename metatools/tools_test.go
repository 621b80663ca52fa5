package metatools

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// requireTool fails the test, rather than skipping it, when a tool the
// test command installs is missing.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install thin-provisioning-tools (the README's test command does)", name)
	}
	return p
}

// thinCheck runs the real thin_check and returns its combined output; it
// fails the test unless thin_check exits 0 with no warnings.
func thinCheck(t testing.TB, path string, args ...string) string {
	t.Helper()
	out, err := exec.Command(requireTool(t, "thin_check"), append(args, path)...).CombinedOutput()
	if err != nil {
		t.Fatalf("thin_check %s: %v\n%s", path, err, out)
	}
	for _, bad := range [][]byte{[]byte("error"), []byte("warning"), []byte("differ"), []byte("missing")} {
		if bytes.Contains(bytes.ToLower(out), bad) {
			t.Fatalf("thin_check %s reported problems:\n%s", path, out)
		}
	}
	return string(out)
}

// thinDump runs the real thin_dump.
func thinDump(t testing.TB, path string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(requireTool(t, "thin_dump"), append(args, path)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("thin_dump %s: %v\n%s", path, err, stderr.String())
	}
	return out
}

// emptyFile makes a metadata file of size bytes.
func emptyFile(t testing.TB, size int64) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "meta")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return f.Name()
}
