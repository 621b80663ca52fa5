package pooltest

import (
	"testing"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/thinpool"
)

// CreateMetadata formats nrBlocks blocks of dev as a pool's metadata
// (thinmeta.Create) and registers the pool. The handle is closed, which
// commits, when t ends unless the test closed it.
func CreateMetadata(t testing.TB, dev bm.Device, nrBlocks uint64, dataBlockSectors uint32, dataBlocks uint64, opts thinmeta.Options) *thinmeta.Pool {
	t.Helper()
	p := CheckDevice(t, dev, int64(nrBlocks)*bm.BlockSize)
	md, err := thinmeta.Create(dev, nrBlocks, dataBlockSectors, dataBlocks, opts)
	if err != nil {
		p.Unchecked("thinmeta.Create failed: " + err.Error())
		t.Fatalf("thinmeta.Create: %v", err)
	}
	p.closeFirst(md.Close)
	alias(t, md, p)
	return md
}

// OpenMetadata opens the metadata on dev (thinmeta.Open). Opened for
// writing, the pool is registered (once, however often it is reopened)
// and checked when t ends; the handle is closed first unless the test
// closed it. A read-only open changes nothing and is only closed.
func OpenMetadata(t testing.TB, dev bm.Device, nrBlocks uint64, opts thinmeta.Options) *thinmeta.Pool {
	t.Helper()
	md, err := OpenMetadataErr(t, dev, nrBlocks, opts)
	if err != nil {
		t.Fatalf("thinmeta.Open: %v", err)
	}
	return md
}

// OpenMetadataErr is OpenMetadata for a test that expects Open to fail:
// the error is returned, and a pool is registered only if it opened.
func OpenMetadataErr(t testing.TB, dev bm.Device, nrBlocks uint64, opts thinmeta.Options) (*thinmeta.Pool, error) {
	t.Helper()
	md, err := thinmeta.Open(dev, nrBlocks, opts)
	if err != nil {
		return nil, err
	}
	if opts.ReadOnly {
		t.Cleanup(func() { md.Close() })
		return md, nil
	}
	p := CheckDevice(t, dev, int64(nrBlocks)*bm.BlockSize)
	p.closeFirst(md.Close)
	alias(t, md, p)
	return md, nil
}

// OpenEngine puts the registered metadata md in service over data
// (thinpool.Open). The engine is closed, committing, before md is and
// before the pool's check, unless the test closed it.
func OpenEngine(t testing.TB, md *thinmeta.Pool, data blk.Backend, cfg thinpool.Config) *thinpool.Pool {
	t.Helper()
	p := lookup(md)
	if p == nil {
		data.Close()
		t.Fatal("pooltest.OpenEngine: the metadata was not made or opened through pooltest")
	}
	e, err := thinpool.Open(md, data, cfg)
	if err != nil {
		t.Fatalf("thinpool.Open: %v", err)
	}
	p.closeFirst(e.Close)
	return e
}

// Of returns the registered pool of a metadata handle, or nil.
func Of(md *thinmeta.Pool) *Pool { return lookup(md) }

// alias makes md find p until t ends.
func alias(t testing.TB, md *thinmeta.Pool, p *Pool) {
	registry.mu.Lock()
	registry.pools[md] = p
	registry.mu.Unlock()
	t.Cleanup(func() {
		registry.mu.Lock()
		delete(registry.pools, md)
		registry.mu.Unlock()
	})
}
