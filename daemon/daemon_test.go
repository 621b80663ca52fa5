package daemon_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/daemon"
	"github.com/thind-storage/thind/internal/fixture"
	"github.com/thind-storage/thind/metatools"
)

type running struct {
	t      testing.TB
	d      *daemon.Daemon
	cancel context.CancelFunc
	done   chan error
	cfg    daemon.Config
	http   *http.Client
}

// start runs a daemon in-process on dir; it is stopped at cleanup.
func start(t testing.TB, cfg daemon.Config) *running {
	t.Helper()
	if cfg.Listen == nil {
		cfg.Listen = []string{"unix:" + filepath.Join(cfg.DataDir, "nbd.sock")}
	}
	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = "off"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &running{t: t, d: d, cancel: cancel, done: make(chan error, 1), cfg: cfg}
	go func() { r.done <- d.Run(ctx) }()
	sock := filepath.Join(cfg.DataDir, "control.sock")
	r.http = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", sock)
	}}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := r.http.Get("http://thind/v1/pool"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the control API never came up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *running) stop() {
	r.t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		r.t.Errorf("Run: %v", err)
	}
}

func (r *running) call(method, path, body string, out any) int {
	r.t.Helper()
	req, _ := http.NewRequest(method, "http://thind"+path, strings.NewReader(body))
	resp, err := r.http.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			r.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

func smallConfig(t testing.TB) daemon.Config {
	return daemon.Config{DataDir: t.TempDir(), DataSize: 1 << 30, MetadataSize: 16 << 20, DefaultSize: 256 << 20}
}

func TestControlAPI(t *testing.T) {
	r := start(t, smallConfig(t))
	var vols []control.Volume
	if code := r.call("GET", "/v1/volumes", "", &vols); code != 200 || len(vols) != 1 || vols[0].Name != "default" || vols[0].Size != 256<<20 {
		t.Fatalf("first start: %d %+v", code, vols)
	}
	var v control.Volume
	if code := r.call("POST", "/v1/volumes", `{"name":"a","size":1048576,"labels":{"team":"x"}}`, &v); code != 201 || v.DevID == 0 {
		t.Fatalf("create: %d %+v", code, v)
	}
	var e control.ErrorBody
	for _, c := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/v1/volumes", `{"name":"a","size":1048576}`, 409},
		{"POST", "/v1/volumes", `{"name":"Bad Name","size":1048576}`, 400},
		{"POST", "/v1/volumes", `{"name":"b","size":1000}`, 400},
		{"POST", "/v1/volumes", `{"name":"b","size":1048576,"bogus":1}`, 400},
		{"POST", "/v1/volumes", `not json`, 400},
		{"GET", "/v1/volumes/nope", ``, 404},
		{"DELETE", "/v1/volumes/nope", ``, 404},
		{"POST", "/v1/volumes/nope/snapshot", `{"name":"c"}`, 404},
	} {
		if code := r.call(c.method, c.path, c.body, &e); code != c.code || e.Error == "" {
			t.Errorf("%s %s %s: %d %q, want %d", c.method, c.path, c.body, code, e.Error, c.code)
		}
	}
	if code := r.call("POST", "/v1/volumes/a/snapshot", `{"name":"a-snap"}`, &v); code != 201 || v.Origin != "a" {
		t.Fatalf("snapshot: %d %+v", code, v)
	}
	if code := r.call("POST", "/v1/volumes/a/resize", `{"size":2097152}`, &v); code != 200 || v.Size != 2<<20 {
		t.Fatalf("resize: %d %+v", code, v)
	}
	// Shrinking is refused unless asked for, as lvreduce does.
	if code := r.call("POST", "/v1/volumes/a/resize", `{"size":1048576}`, &e); code != 409 || !strings.Contains(e.Error, "--allow-shrink") {
		t.Fatalf("shrink without allow_shrink: %d %q", code, e.Error)
	}
	if code := r.call("POST", "/v1/volumes/a/resize", `{"size":1048576,"allow_shrink":true}`, &v); code != 200 || v.Size != 1<<20 {
		t.Fatalf("shrink with allow_shrink: %d %+v", code, v)
	}
	if code := r.call("POST", "/v1/volumes/a/resize", `{"size":2097152}`, &v); code != 200 || v.Size != 2<<20 {
		t.Fatalf("grow again: %d %+v", code, v)
	}
	if code := r.call("GET", "/v1/volumes?label=team=x", "", &vols); code != 200 || len(vols) != 1 || vols[0].Name != "a" {
		t.Fatalf("label filter: %+v", vols)
	}
	if code := r.call("DELETE", "/v1/volumes/a", "", nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	var st control.PoolStatus
	if code := r.call("GET", "/v1/pool", "", &st); code != 200 || st.Mode != "write" || st.Volumes != 2 {
		t.Fatalf("status: %+v", st)
	}
	// Restart: the catalog and the pool agree and nothing moved.
	r.stop()
	r = start(t, r.cfg)
	if code := r.call("GET", "/v1/volumes", "", &vols); code != 200 || len(vols) != 2 || vols[1].Name != "default" || vols[0].Origin != "a" {
		t.Fatalf("after restart: %+v", vols)
	}
	r.stop()
	img, err := metatools.OpenImage(filepath.Join(r.cfg.DataDir, "metadata"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if rep := metatools.Check(img, metatools.CheckOptions{}); !rep.OK() || rep.Devices != 2 {
		var b bytes.Buffer
		rep.WriteText(&b)
		t.Fatalf("check of the stopped pool:\n%s", b.String())
	}
}

func TestConflictingFlagsAreRefused(t *testing.T) {
	cfg := smallConfig(t)
	r := start(t, cfg)
	r.stop()
	for _, c := range []daemon.Config{
		{DataDir: cfg.DataDir, BlockSize: 128 << 10, BlockSizeSet: true},
		{DataDir: cfg.DataDir, DataSize: 512 << 20, DataSizeSet: true},
		{DataDir: cfg.DataDir, MetadataSize: 8 << 20, MetadataSizeSet: true},
	} {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if d, err := daemon.New(context.Background(), c); err == nil {
			d.Run(canceled())
			t.Fatalf("%+v accepted", c)
		} else {
			t.Log(err)
		}
	}
	// Larger sizes grow the pool.
	grown := cfg
	grown.DataSize, grown.DataSizeSet = 2<<30, true
	grown.MetadataSize, grown.MetadataSizeSet = 32<<20, true
	r = start(t, grown)
	var st control.PoolStatus
	r.call("GET", "/v1/pool", "", &st)
	if st.DataBytes != 2<<30 || st.MetadataBlocks != 32<<20/4096 {
		t.Fatalf("data %d bytes, metadata %d blocks after growing", st.DataBytes, st.MetadataBlocks)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestServesAPoolLinuxWrote serves kernel-small (a pool Linux 6.1 made):
// its two thin devices are adopted as volumes, and read through thind
// they hash as they did through dm-thin.
func TestServesAPoolLinuxWrote(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"meta", "data"} {
		fixture.Unpack(t, "kernel-small."+f+".gz", filepath.Join(dir, f))
	}
	cfg := daemon.Config{DataDir: dir, MetadataDevice: filepath.Join(dir, "meta"), DataDevice: filepath.Join(dir, "data")}
	r := start(t, cfg)
	var vols []control.Volume
	r.call("GET", "/v1/volumes", "", &vols)
	if len(vols) != 2 || vols[0].Name != catalog.OrphanName(0) || vols[1].Name != catalog.OrphanName(1) {
		t.Fatalf("adopted volumes: %+v", vols)
	}
	want := map[string]string{
		"orphan-0": "71202a20b3fc6edb907761775eb04c8de6f8704baf344f13c105f5c2ab90b965",
		"orphan-1": "96edd335e519b4409f91aaee1bebf8ad64303e081ab77e6a0bc77969c746d221",
	}
	for name, sum := range want {
		// The kernel's devices were 256 MiB; dm-thin keeps no size.
		if code := r.call("POST", "/v1/volumes/"+name+"/resize", `{"size":268435456}`, nil); code != 200 {
			t.Fatalf("resize %s: %d", name, code)
		}
		th, release, err := r.d.OpenForTest(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		buf := make([]byte, 1<<20)
		for off := uint64(0); off < 256<<20; off += uint64(len(buf)) {
			if err := th.ReadAt(context.Background(), buf, off); err != nil {
				t.Fatal(err)
			}
			h.Write(buf)
		}
		release()
		if got := hex.EncodeToString(h.Sum(nil)); got != sum {
			t.Errorf("%s: sha256 %s, Linux read %s", name, got, sum)
		}
	}
}

func TestControlAPIAccessLists(t *testing.T) {
	r := start(t, smallConfig(t))
	var v control.Volume
	if code := r.call("POST", "/v1/volumes", `{"name":"a","size":1048576,"access":["uid=1000:ro","cn=alice"]}`, &v); code != 201 ||
		strings.Join(v.Access, " ") != "cn=alice:rw uid=1000:ro" {
		t.Fatalf("create with an access list: %d %q, want the grants in canonical order", code, v.Access)
	}
	var e control.ErrorBody
	for _, c := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/volumes", `{"name":"b","size":1048576,"access":["user=x"]}`, 400, `kind "user"`},
		{"PATCH", "/v1/volumes/a", `{"access":["uid=x"]}`, 400, "want a decimal id"},
		{"PATCH", "/v1/volumes/a", `{"access":["cn=x","cn=x:ro"]}`, 400, "granted twice"},
		{"PATCH", "/v1/volumes/nope", `{"access":[]}`, 404, "no such volume"},
		{"POST", "/v1/volumes/a/snapshot", `{"name":"s","access":["gid=-1"]}`, 400, "want a decimal id"},
	} {
		if code := r.call(c.method, c.path, c.body, &e); code != c.code || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s %s %s: %d %q, want %d with %q", c.method, c.path, c.body, code, e.Error, c.code, c.want)
		}
	}
	// A snapshot keeps its origin's list, or takes its own. (A fresh v
	// each time: an absent "access" leaves a decoded one as it was.)
	if code := r.call("POST", "/v1/volumes/a/snapshot", `{"name":"a-snap"}`, fresh(&v)); code != 201 || strings.Join(v.Access, " ") != "cn=alice:rw uid=1000:ro" {
		t.Errorf("snapshot: %d %q, want the origin's list", code, v.Access)
	}
	if code := r.call("POST", "/v1/volumes/a/snapshot", `{"name":"a-open","access":[]}`, fresh(&v)); code != 201 || len(v.Access) != 0 {
		t.Errorf("snapshot with an empty list: %d %q, want none", code, v.Access)
	}
	// PATCH replaces the list and leaves the other settings; [] removes it.
	if code := r.call("PATCH", "/v1/volumes/a", `{"read_only":true}`, fresh(&v)); code != 200 || len(v.Access) != 2 || !v.ReadOnly {
		t.Errorf("PATCH read_only: %d %+v, want the list kept", code, v)
	}
	if code := r.call("PATCH", "/v1/volumes/a", `{"access":["gid=27"]}`, fresh(&v)); code != 200 || strings.Join(v.Access, " ") != "gid=27:rw" || !v.ReadOnly {
		t.Errorf("PATCH access: %d %+v", code, v)
	}
	if code := r.call("PATCH", "/v1/volumes/a", `{"access":[]}`, fresh(&v)); code != 200 || len(v.Access) != 0 {
		t.Errorf("PATCH access []: %d %+v, want no list", code, v)
	}
}

// fresh zeroes v for a new answer to decode into.
func fresh(v *control.Volume) *control.Volume {
	*v = control.Volume{}
	return v
}
