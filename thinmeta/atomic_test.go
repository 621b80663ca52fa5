package thinmeta_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/metatools"
	"github.com/thind-storage/thind/thinmeta"
)

const atomicMetaBlocks = 2048

// changePool makes a transaction's worth of scattered changes, the same
// ones every time for the same starting state.
func changePool(t *testing.T, p *thinmeta.Pool, seed uint64) {
	rng := randtest.Stream(seed, 1)
	for _, d := range p.Devices() {
		for i := 0; i < 150; i++ {
			b, err := p.AllocDataBlock()
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Insert(d.ID, rng.Uint64N(5000), b); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.RemoveRange(d.ID, 100, 300); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.CreateSnap(100+seed, 0); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteThin(seed); err != nil {
		t.Fatal(err)
	}
	if err := p.SetTransactionID(p.TransactionID(), p.TransactionID()+1); err != nil {
		t.Fatal(err)
	}
}

func dumpDevice(t *testing.T, dev *bm.MemDevice) (string, error) {
	t.Helper()
	img, err := metatools.NewImage(dev, atomicMetaBlocks)
	if err != nil {
		return "", err
	}
	if r := metatools.Check(img, metatools.CheckOptions{}); !r.OK() {
		var b bytes.Buffer
		r.WriteText(&b)
		return "", errors.New(b.String())
	}
	var out bytes.Buffer
	err = metatools.Dump(img, &out, metatools.DumpOptions{})
	return out.String(), err
}

// TestCommitIsAtomic cuts the power after every possible number of block
// writes of a commit, and with random subsets of the unsynced writes
// surviving; the device must always reopen to exactly the previous or the
// new transaction, pass both checkers, and never to anything else.
func TestCommitIsAtomic(t *testing.T) {
	// A small cache writes dirty blocks back during the transaction; a
	// large one leaves them all to the commit.
	for _, cache := range []int64{64 << 10, 16 << 20} {
		t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) { commitIsAtomic(t, cache) })
	}
}

func commitIsAtomic(t *testing.T, cache int64) {
	base := bm.NewMemDevice(atomicMetaBlocks * bm.BlockSize)
	p := pooltest.CreateMetadata(t, base, atomicMetaBlocks, 128, 100000, thinmeta.Options{CacheBytes: cache})
	for id := uint64(0); id < 4; id++ {
		if err := p.CreateThin(id); err != nil {
			t.Fatal(err)
		}
	}
	changePool(t, p, 1)
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	before, err := dumpDevice(t, base)
	if err != nil {
		t.Fatal(err)
	}

	// The complete transaction, to learn its result and its write count.
	full := base.Clone()
	pf := pooltest.OpenMetadata(t, full, atomicMetaBlocks, thinmeta.Options{CacheBytes: cache})
	changePool(t, pf, 2)
	w0 := full.Writes()
	if err := pf.Commit(); err != nil {
		t.Fatal(err)
	}
	writes := full.Writes() - w0
	after, err := dumpDevice(t, full)
	if err != nil {
		t.Fatal(err)
	}
	if before == after {
		t.Fatal("the transaction changed nothing")
	}
	t.Logf("a commit of this transaction makes %d device writes", writes)

	outcomes := map[string]int{}
	rng := randtest.New(t)
	for k := 0; k <= writes; k++ {
		dev := base.Clone()
		pk := pooltest.OpenMetadata(t, dev, atomicMetaBlocks, thinmeta.Options{CacheBytes: cache})
		pooltest.Of(pk).Unchecked("its power is cut in the middle of a commit: every crash clone of it is checked here")
		changePool(t, pk, 2)
		dev.CutPowerAfter(k)
		err = pk.Commit()
		if (k < writes) != (err != nil) {
			t.Fatalf("cut after %d of %d writes: commit returned %v", k, writes, err)
		}
		for _, keep := range []float64{1, 0, 0.5} {
			crashed := dev.CrashClone(keep, rng)
			got, err := dumpDevice(t, crashed)
			if err != nil {
				t.Fatalf("cut after %d writes, keeping %.1f of the unsynced: %v", k, keep, err)
			}
			switch got {
			case before:
				outcomes["previous"]++
			case after:
				outcomes["new"]++
			default:
				t.Fatalf("cut after %d writes, keeping %.1f of the unsynced: neither the old nor the new transaction", k, keep)
			}
			if k == writes && keep == 0 && got != after {
				t.Fatal("a completed commit did not survive a crash")
			}
			if k%4 == 0 {
				pooltest.CheckDeviceNow(t, crashed, crashed.Size())
			}
		}
		if _, err := pooltest.OpenMetadataErr(t, dev.CrashClone(1, nil), atomicMetaBlocks, thinmeta.Options{}); err != nil {
			t.Fatalf("cut after %d writes: reopen: %v", k, err)
		}
	}
	if outcomes["previous"] == 0 || outcomes["new"] == 0 {
		t.Fatalf("outcomes %v: both must occur", outcomes)
	}
	t.Logf("outcomes: %v", outcomes)
}
