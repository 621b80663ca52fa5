package thinpool_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/thinpool"
)

// memData is a data device in memory that remembers which writes were
// flushed (bm.MemDevice), so a test can cut the power and keep only those.
type memData struct{ *bm.MemDevice }

func (m memData) Discard(off, n int64) error { return m.WriteZeroes(off, n) }
func (m memData) Flush() error               { return m.Sync() }
func (m memData) Size() (int64, error)       { return m.MemDevice.Size(), nil }
func (m memData) Close() error               { return nil }
func (m memData) WriteZeroes(off, n int64) error {
	zero := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(zero)))
		if _, err := m.WriteAt(zero[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}

var _ blk.Backend = memData{}

// env is a pool on real files in a temporary directory.
type env struct {
	t        testing.TB
	dir      string
	metaPath string
	dataPath string
	meta     *os.File
	md       *thinmeta.Pool
	pool     *thinpool.Pool
	cfg      thinpool.Config
}

const testBlockSectors = 128 // 64 KiB

func newFileEnv(t *testing.T, metaBytes, dataBytes int64, cfg thinpool.Config) *env {
	t.Helper()
	return newFileEnvTB(t, t.TempDir(), metaBytes, dataBytes, cfg)
}

func newFileEnvTB(t testing.TB, dir string, metaBytes, dataBytes int64, cfg thinpool.Config) *env {
	t.Helper()
	return newFileEnvBlocks(t, dir, metaBytes, dataBytes, testBlockSectors, cfg)
}

// newFileEnvBlocks is newFileEnvTB with data blocks of blockSectors.
func newFileEnvBlocks(t testing.TB, dir string, metaBytes, dataBytes int64, blockSectors uint32, cfg thinpool.Config) *env {
	t.Helper()
	e := &env{t: t, dir: dir, cfg: cfg}
	e.metaPath = filepath.Join(e.dir, "metadata")
	e.dataPath = filepath.Join(e.dir, "data")
	for path, size := range map[string]int64{e.metaPath: metaBytes, e.dataPath: dataBytes} {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	mf, n, err := bm.OpenFile(e.metaPath, false)
	if err != nil {
		t.Fatal(err)
	}
	// Checked by pooltest when the test ends, after e.close.
	e.meta, e.md = mf, pooltest.CreateMetadata(t, mf, n, blockSectors, 0, thinmeta.Options{})
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	data, err := blk.OpenFile(e.dataPath, blk.FileOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.pool = pooltest.OpenEngine(e.t, e.md, data, e.cfg)
}

func (e *env) close() {
	if e.pool != nil {
		e.pool.Close()
		e.pool = nil
	}
	if e.md != nil {
		e.md.Close()
		e.md = nil
	}
	if e.meta != nil {
		e.meta.Close()
		e.meta = nil
	}
}

func (e *env) thin(id, size uint64) *thinpool.Thin {
	e.t.Helper()
	if _, err := e.pool.Metadata().Device(id); err != nil {
		if err := e.pool.CreateThin(id); err != nil {
			e.t.Fatal(err)
		}
	}
	th, err := e.pool.OpenThin(id, size)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { th.Close() })
	return th
}

var bg = context.Background()

// newFullPool returns a pool whose 1 MiB data device a thin has filled,
// with writes queueing for space for up to a minute; full receives each
// entry into ModeOutOfDataSpace.
func newFullPool(t *testing.T) (e *env, th *thinpool.Thin, full chan struct{}) {
	t.Helper()
	full = make(chan struct{}, 1)
	cfg := thinpool.Config{NoSpaceTimeout: time.Minute, OnModeChange: func(_, to thinpool.Mode) {
		if to == thinpool.ModeOutOfDataSpace {
			full <- struct{}{}
		}
	}}
	e = newFileEnv(t, 16<<20, 1<<20, cfg)
	th = e.thin(1, 16<<20)
	if err := th.WriteAt(bg, fill(8, 1<<20), 0, false); err != nil {
		t.Fatal(err)
	}
	return e, th, full
}
