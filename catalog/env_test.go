package catalog

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/thinmeta"
)

// A small pool: 2 MiB of metadata, 64 KiB data blocks, 256 MiB of data.
const (
	testMetaBlocks  = 512
	testBlockSector = 128
	testBlockBytes  = testBlockSector * SectorSize
	testDataBlocks  = 4096
	testDir         = "catalog"
)

// testEnv is a catalog and a pool on crashable memory: pebble on a
// crashable vfs.MemFS, the metadata on a bm.MemDevice. Both keep track of
// what was synced, so crash() can drop everything else.
type testEnv struct {
	t     testing.TB
	fs    *vfs.MemFS
	dev   *bm.MemDevice
	io    *hookDevice // dev as the pool sees it
	pool  *thinmeta.Pool
	cat   *Catalog
	clock *testClock
	// fsHook, if set, runs before every pebble file system operation;
	// pebble calls it from its own goroutines too.
	fsHook atomic.Pointer[func(errorfs.Op)]
}

// hookInjector runs a testEnv's fsHook and injects no errors.
type hookInjector struct{ e *testEnv }

func (h hookInjector) String() string { return "hook" }

func (h hookInjector) MaybeError(op errorfs.Op) error {
	if fn := h.e.fsHook.Load(); fn != nil {
		(*fn)(op)
	}
	return nil
}

// testClock ticks a second per reading, so creation times are distinct
// and the same in every run.
type testClock struct{ n atomic.Int64 }

func (c *testClock) now() time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(c.n.Add(1)) * time.Second)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newEnv formats a pool, opens an empty catalog and reconciles it.
func newEnv(t testing.TB) *testEnv {
	t.Helper()
	dev := bm.NewMemDevice(testMetaBlocks * bm.BlockSize)
	io := &hookDevice{MemDevice: dev}
	pool := pooltest.CreateMetadata(t, io, testMetaBlocks, testBlockSector, testDataBlocks, thinmeta.Options{})
	e := &testEnv{t: t, fs: vfs.NewCrashableMem(), dev: dev, io: io, pool: pool, clock: &testClock{}}
	e.open()
	e.reconcile()
	return e
}

// open opens the catalog on e.fs and arranges for it to be closed.
func (e *testEnv) open() {
	e.t.Helper()
	fs := errorfs.Wrap(e.fs, hookInjector{e})
	cat, err := Open(context.Background(), testDir, Options{FS: fs, Logger: testLogger(e.t), Now: e.clock.now})
	if err != nil {
		e.t.Fatalf("open catalog: %v", err)
	}
	e.cat = cat
	e.t.Cleanup(func() {
		if err := cat.Close(); err != nil && !errors.Is(err, ErrClosed) {
			e.t.Errorf("close catalog: %v", err)
		}
	})
}

func (e *testEnv) reconcile() Report {
	e.t.Helper()
	rep, err := e.cat.Reconcile(context.Background(), e.pool)
	if err != nil {
		e.t.Fatalf("reconcile: %v", err)
	}
	e.check()
	return rep
}

// check fails the test unless catalog and metadata agree exactly.
func (e *testEnv) check() {
	e.t.Helper()
	if err := e.cat.Check(context.Background(), e.pool); err != nil {
		e.t.Fatalf("check: %v", err)
	}
}

// snapshot is what a crash could leave: pebble's synced files plus
// unsyncedPct percent of the rest, and the metadata's synced writes
// plus each unsynced one with probability keep.
type snapshot struct {
	fs  *vfs.MemFS
	dev *bm.MemDevice
}

func (e *testEnv) crashClone(rng *rand.Rand, unsyncedPct int, keep float64) snapshot {
	return snapshot{
		fs:  e.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPct, RNG: rng}),
		dev: e.dev.CrashClone(keep, rng),
	}
}

// restart abandons e (closing its catalog, dropping its pool) and opens
// both stores from s, without reconciling.
func (e *testEnv) restart(s snapshot) *testEnv {
	e.t.Helper()
	if err := e.cat.Close(); err != nil && !errors.Is(err, ErrClosed) {
		e.t.Fatalf("close catalog: %v", err)
	}
	// The abandoned pool is what a crashed process left in memory; what
	// its disk held, s, is reopened below and checked in its place.
	pooltest.Of(e.pool).Unchecked("abandoned at a simulated crash; its crash image is reopened and checked")
	io := &hookDevice{MemDevice: s.dev}
	pool, err := pooltest.OpenMetadataErr(e.t, io, testMetaBlocks, thinmeta.Options{})
	if err != nil {
		e.t.Fatalf("open metadata after crash: %v", err)
	}
	n := &testEnv{t: e.t, fs: s.fs, dev: s.dev, io: io, pool: pool, clock: e.clock}
	n.open()
	return n
}

// hookDevice calls hook before every write and sync of the metadata
// device, so a test can take a crash clone between any two of them.
type hookDevice struct {
	*bm.MemDevice
	hook func()
}

func (d *hookDevice) WriteAt(p []byte, off int64) (int, error) {
	if d.hook != nil {
		d.hook()
	}
	return d.MemDevice.WriteAt(p, off)
}

func (d *hookDevice) Sync() error {
	if d.hook != nil {
		d.hook()
	}
	return d.MemDevice.Sync()
}

// mapBlocks maps virtual blocks [begin, end) of dev to fresh data blocks
// and commits, as the engine would after writes.
func (e *testEnv) mapBlocks(dev, begin, end uint64) {
	e.t.Helper()
	for vb := begin; vb < end; vb++ {
		b, err := e.pool.AllocDataBlock()
		if err != nil {
			e.t.Fatal(err)
		}
		if err := e.pool.Insert(dev, vb, b); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := e.pool.Commit(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) create(name string, size uint64) Volume {
	e.t.Helper()
	v, err := e.cat.CreateVolume(context.Background(), e.pool, Spec{Name: name, Size: size})
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *testEnv) list() []Volume {
	e.t.Helper()
	vs, err := e.cat.List(context.Background(), Filter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return vs
}
