package test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/thind-storage/thind/internal/tooltest"
)

// fileDigest is a file's size and sha256, to prove a refused start wrote
// nothing.
func fileDigest(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(n, 10) + " " + hex.EncodeToString(h.Sum(nil))
}

func digests(t *testing.T, paths ...string) map[string]string {
	m := map[string]string{}
	for _, p := range paths {
		m[p] = fileDigest(t, p)
	}
	return m
}

func checkUnchanged(t *testing.T, before map[string]string) {
	t.Helper()
	for p, want := range before {
		got := fileDigest(t, p)
		if got != want {
			t.Errorf("%s changed: %s, was %s", p, got, want)
		} else {
			t.Logf("%s unchanged: %s", filepath.Base(p), got)
		}
	}
}

// tinyPool keeps the files these tests hash small.
var tinyPool = []string{"--data-size", "64M", "--default-size", "32M", "--metadata-size", "16M"}

// serveRefused runs a `thind serve` that must refuse to start, and
// returns its one line of error.
func serveRefused(t *testing.T, want string, args ...string) string {
	t.Helper()
	base := tooltest.ShortDir(t)
	args = append([]string{"serve", "--log-level", "warn", "--listen", "unix:" + filepath.Join(base, "nbd.sock"), "--metrics-addr", "off",
		"--control-socket", filepath.Join(base, "control.sock")}, args...)
	out, errOut, code := runThind(t, daemonEnv(), args...)
	checkOneLineError(t, args, out, errOut, code, want)
	t.Logf("refused: %s", strings.TrimSpace(errOut))
	return errOut
}

func TestASecondDaemonOnTheSameDevicesIsRefusedAndChangesNothing(t *testing.T) {
	d := startDaemon(t, tinyPool...)
	meta, data := filepath.Join(d.dir, "metadata"), filepath.Join(d.dir, "data")
	pid := strconv.Itoa(d.cmd.Process.Pid)
	before := digests(t, meta, data)

	// Another data dir, the same devices, and a --data-size that would
	// grow the live pool's data file.
	other := filepath.Join(tooltest.ShortDir(t), "other")
	msg := serveRefused(t, "in use by pid "+pid, "--data-dir", other, "--metadata-device", meta, "--data-device", data, "--data-size", "8G")
	if !strings.Contains(msg, meta) || !strings.Contains(msg, "serve") {
		t.Errorf("the refusal does not name the metadata device and the holding command: %s", msg)
	}
	// The same data dir: refused by the directory's lock, before pebble's.
	serveRefused(t, "in use by pid "+pid, "--data-dir", d.dir)
	checkUnchanged(t, before)
	// The daemon still serves.
	d.mustCLI("volume", "create", "after", "--size", "1M")
}

func TestACatalogPointedAtAnotherPoolsDevicesIsRefusedUntilAdopted(t *testing.T) {
	a, b := startDaemon(t, tinyPool...), startDaemon(t, tinyPool...)
	a.mustCLI("volume", "create", "only-in-a", "--size", "1M")
	a.mustCLI("volume", "create", "second-in-a", "--size", "1M")
	b.mustCLI("volume", "create", "only-in-b", "--size", "1M")
	a.stop()
	b.stop()
	bMeta, bData := filepath.Join(b.dir, "metadata"), filepath.Join(b.dir, "data")
	before := digests(t, bMeta, bData)
	aCatalog := catalogDigest(t, a.dir)

	// a's catalog with b's devices.
	serveRefused(t, "--adopt", "--data-dir", a.dir, "--metadata-device", bMeta, "--data-device", bData)
	// A new catalog with b's devices: they are b's.
	serveRefused(t, "belongs to pool", "--data-dir", filepath.Join(tooltest.ShortDir(t), "new"), "--metadata-device", bMeta, "--data-device", bData)
	checkUnchanged(t, before)
	if got := catalogDigest(t, a.dir); got != aCatalog {
		t.Errorf("a's catalog changed: %s, was %s", got, aCatalog)
	}

	// Each pool still starts on its own devices.
	a.start()
	if vols := a.volumes(); len(vols) != 3 {
		t.Errorf("pool a after the refusals: %+v", vols)
	}
	a.stop()

	// Adopted deliberately, a's catalog follows b's thin devices (0 and
	// 1): its volume on device 2, which b lacks, is dropped; b's catalog
	// is then refused.
	a.args = append(a.args, "--adopt", "--metadata-device", bMeta, "--data-device", bData)
	a.start()
	names := map[string]bool{}
	for _, v := range a.volumes() {
		names[v.Name] = true
	}
	if names["second-in-a"] || len(names) != 2 {
		t.Errorf("after --adopt a lists %v, want one volume per thin device of b", names)
	}
	a.stop()
	checkStoppedPool(t, b)
	serveRefused(t, "--adopt", "--data-dir", b.dir)
}

// A pool no thind owned (thin_restore wrote it) is taken by a new
// catalog without a flag; after that it has an owner.
func TestARestoredPoolIsTakenOnceAndThenOwned(t *testing.T) {
	d := startDaemon(t, tinyPool...)
	d.mustCLI("volume", "create", "v", "--size", "1M")
	d.stop()
	meta := filepath.Join(d.dir, "metadata")
	xml := runThindOK(t, "meta", "dump", meta)
	if !strings.Contains(xml, `uuid=""`) {
		t.Errorf("thind meta dump prints a uuid, thin_dump never does:\n%.200s", xml)
	}
	dir := tooltest.ShortDir(t)
	restored := filepath.Join(dir, "restored.meta")
	xmlPath := filepath.Join(dir, "pool.xml")
	if err := os.WriteFile(xmlPath, []byte(xml), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(restored, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(restored, 16<<20); err != nil {
		t.Fatal(err)
	}
	tooltest.Run(t, "thin_restore", pkgThinTools, "-i", xmlPath, "-o", restored)
	// Restored metadata has no identity: d's own catalog refuses it.
	serveRefused(t, "--adopt", "--data-dir", d.dir, "--metadata-device", restored, "--data-device", filepath.Join(d.dir, "data"))

	e := startDaemon(t, append(tinyPool, "--metadata-device", restored, "--data-device", filepath.Join(d.dir, "data"))...)
	e.stop()
	tooltest.Run(t, "thin_check", pkgThinTools, restored)
	serveRefused(t, "belongs to pool", "--data-dir", filepath.Join(dir, "third"), "--metadata-device", restored, "--data-device", filepath.Join(d.dir, "data"))
}

// catalogDigest hashes every file of a catalog, so a refused start is
// seen to leave it alone.
func catalogDigest(t *testing.T, dataDir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(filepath.Join(dataDir, "catalog"), func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		h.Write([]byte(p))
		h.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The offline tools on a pool a daemon holds: readers of the current
// metadata and writers are refused, naming the daemon; -m reads only a
// held metadata snapshot; nothing is written.
func TestMetaToolsOnAPoolInUse(t *testing.T) {
	d := startDaemon(t, tinyPool...)
	meta := filepath.Join(d.dir, "metadata")
	pid := "in use by pid " + strconv.Itoa(d.cmd.Process.Pid)
	before := digests(t, meta)
	xml := filepath.Join(t.TempDir(), "pool.xml")
	if err := os.WriteFile(xml, []byte(`<superblock uuid="" time="0" transaction="1" data_block_size="128" nr_data_blocks="16"></superblock>`), 0o600); err != nil {
		t.Fatal(err)
	}
	spare := filepath.Join(t.TempDir(), "spare.meta")
	runThindOK(t, "meta", "restore", "-i", xml, "-o", spare, "--metadata-size", "16M", "-q")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"meta", "dump", meta}, pid},
		{[]string{"meta", "ls", meta}, pid},
		{[]string{"meta", "check", meta}, pid},
		{[]string{"meta", "dump", "-m", meta}, "no current metadata snap"},
		{[]string{"meta", "restore", "-i", xml, "-o", meta}, pid},
		{[]string{"meta", "repair", "-i", spare, "-o", meta}, pid},
		{[]string{"meta", "repair", "-i", meta, "-o", spare}, pid},
	} {
		out, errOut, code := runThind(t, daemonEnv(), c.args...)
		checkOneLineError(t, c.args, out, errOut, code, c.want)
	}
	checkUnchanged(t, before)
	d.stop()
	runThindOK(t, "meta", "check", "-q", meta)
}
