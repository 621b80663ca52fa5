package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/daemon"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/tooltest"
)

func nbdURI(cfg daemon.Config) string {
	return "nbd+unix:///default?socket=" + filepath.Join(cfg.DataDir, "nbd.sock")
}

func (r *running) status() control.PoolStatus {
	r.t.Helper()
	var s control.PoolStatus
	if code := r.call("GET", "/v1/pool", "", &s); code != 200 {
		r.t.Fatalf("pool status: %d", code)
	}
	return s
}

// TestGrowingAFullDataPoolResumesQueuedWrites fills the data device, so
// that the next write queues (the default no-space policy), then grows
// the data online: the queued write completes, and the status counts the
// new size and the use at once.
func TestGrowingAFullDataPoolResumesQueuedWrites(t *testing.T) {
	cfg := smallConfig(t)
	cfg.DataSize, cfg.DefaultSize = 16<<20, 64<<20 // 256 blocks
	pooltest.CheckFile(t, filepath.Join(cfg.DataDir, "metadata"))
	r := start(t, cfg)
	c := tooltest.DialNBD(t, nbdURI(cfg))
	for b := 0; b < 256; b++ {
		c.Want("ok", "write %d %d %d", b*blockBytes, blockBytes, b%250+1)
	}
	queued := make(chan string, 1)
	go func() { queued <- c.Do("write %d %d 251", 256*blockBytes, blockBytes) }()
	deadline := time.Now().Add(20 * time.Second)
	for r.status().Mode != "out-of-data-space" {
		if time.Now().After(deadline) {
			t.Fatalf("the pool never ran out of data space: %+v", r.status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case a := <-queued:
		t.Fatalf("a write to a full pool answered %q instead of queueing", a)
	default:
	}
	var s control.PoolStatus
	if code := r.call("POST", "/v1/pool/resize", fmt.Sprintf(`{"data_size":%d}`, 32<<20), &s); code != 200 {
		t.Fatalf("pool resize: %d", code)
	}
	if a := <-queued; a != "ok" {
		t.Fatalf("the queued write after the grow: %q", a)
	}
	s = r.status()
	if s.Mode != "write" || s.DataBlocks != 512 || s.DataBlocksUsed != 257 || s.DataBytes != 32<<20 {
		t.Fatalf("after the grow: mode %s, %d/%d data blocks used, %d bytes", s.Mode, s.DataBlocksUsed, s.DataBlocks, s.DataBytes)
	}
	c.Want("ok", "flush")
	c.Want("ok", "read %d %d 251", 256*blockBytes, blockBytes)
	c.Want("ok", "read 0 %d 1", blockBytes)
	var e control.ErrorBody
	if code := r.call("POST", "/v1/pool/resize", fmt.Sprintf(`{"data_size":%d}`, 16<<20), &e); code != 409 {
		t.Fatalf("shrinking the pool: %d %s", code, e.Error)
	}
}

// TestGrowingAFullMetadataPoolOnline fills a tiny metadata device until
// the pool is read-only for lack of metadata space and writes get
// ENOSPC, then grows the metadata online: the pool is in write mode, the
// status counts the new blocks as free at once, and writes provision
// again. A later offline grow (a restart with a larger --metadata-size)
// reports the new space at once too.
func TestGrowingAFullMetadataPoolOnline(t *testing.T) {
	cfg := smallConfig(t)
	cfg.MetadataSize, cfg.DefaultSize = 48*4096, 1<<40
	cfg.Engine.SkipBlockZeroing = true
	pooltest.CheckFile(t, filepath.Join(cfg.DataDir, "metadata"))
	r := start(t, cfg)
	c := tooltest.DialNBD(t, nbdURI(cfg))
	rng := randtest.New(t)
	var answer string
	written := 0
	for ; written < 20000; written++ {
		if answer = c.Do("write %d 4096 7", rng.Uint64N(1<<24)*blockBytes); answer != "ok" {
			break
		}
	}
	if answer != "err ENOSPC" {
		t.Fatalf("after %d writes: %q, want ENOSPC", written, answer)
	}
	if s := r.status(); s.Mode != "read-only" {
		t.Fatalf("a full metadata device: mode %s", s.Mode)
	}
	t.Logf("the metadata held %d writes", written)
	var s control.PoolStatus
	if code := r.call("POST", "/v1/pool/resize", fmt.Sprintf(`{"metadata_size":%d}`, 1<<20), &s); code != 200 {
		t.Fatalf("pool resize: %d", code)
	}
	if s.Mode != "write" || s.MetadataBlocks != 256 || s.MetadataBlocksUsed >= 256-100 {
		t.Fatalf("after the grow: mode %s, %d/%d metadata blocks used", s.Mode, s.MetadataBlocksUsed, s.MetadataBlocks)
	}
	for i := 0; i < 200; i++ {
		c.Want("ok", "write %d 4096 8", rng.Uint64N(1<<24)*blockBytes)
	}
	c.Want("ok", "flush")
	c.Close()
	r.stop()

	cfg.MetadataSize, cfg.MetadataSizeSet = 4<<20, true
	r = start(t, cfg)
	if s := r.status(); s.MetadataBlocks != 1024 || s.MetadataBlocksUsed >= 256 {
		t.Fatalf("after an offline grow: %d/%d metadata blocks used", s.MetadataBlocksUsed, s.MetadataBlocks)
	}
}

// TestBadPoolResizesChangeNothing sends resizes the pool cannot take:
// each gets a clear error, no file grows, the pool stays in write mode
// and starts again.
func TestBadPoolResizesChangeNothing(t *testing.T) {
	cfg := smallConfig(t)
	pooltest.CheckFile(t, filepath.Join(cfg.DataDir, "metadata"))
	r := start(t, cfg)
	sizes := func() [2]int64 {
		var out [2]int64
		for i, name := range []string{"data", "metadata"} {
			st, err := os.Stat(filepath.Join(cfg.DataDir, name))
			if err != nil {
				t.Fatal(err)
			}
			out[i] = st.Size()
		}
		return out
	}
	before := sizes()
	for _, c := range []struct {
		body string
		code int
		says string
	}{
		{`{}`, 400, "give data_size"},
		{`{"data_size":1}`, 409, "cannot shrink"},
		{`{"data_size":1099511627776000}`, 507, "metadata blocks"}, // 1000 TiB: more bitmaps than 16 MiB of metadata holds
		{`{"data_size":18446744073709551615}`, 400, "addressable"},
		{`{"metadata_size":1}`, 409, "cannot shrink"},
		{`{"metadata_size":18446744073709551615}`, 400, "at most"},
		{`{"data_size":-1}`, 400, "bad request"},
		{`{"mode":"write"}`, 400, "bad request"},
	} {
		var e control.ErrorBody
		if code := r.call("POST", "/v1/pool/resize", c.body, &e); code != c.code || !strings.Contains(e.Error, c.says) {
			t.Errorf("resize %s: %d %q, want %d and %q", c.body, code, e.Error, c.code, c.says)
		}
	}
	var e control.ErrorBody
	if code := r.call("POST", "/v1/pool/mode", `{"mode":"fail"}`, &e); code != 400 {
		t.Errorf("set-mode fail: %d %s", code, e.Error)
	}
	if after := sizes(); after != before {
		t.Fatalf("file sizes %v became %v", before, after)
	}
	if s := r.status(); s.Mode != "write" {
		t.Fatalf("mode %s", s.Mode)
	}
	r.stop()
	start(t, cfg)
}
