package thinpool_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/faultdev"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/thinpool"
)

// faultEnv is a pool on files with fault injection under both stores.
type faultEnv struct {
	*env
	metaDev  *faultdev.Device
	metaFile *os.File
	dataDev  *faultdev.Backend
	check    *pooltest.Pool
}

func newFaultEnv(t *testing.T, metaBytes, dataBytes int64, cfg thinpool.Config) *faultEnv {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), cfg: cfg}
	e.metaPath = filepath.Join(e.dir, "metadata")
	e.dataPath = filepath.Join(e.dir, "data")
	for path, size := range map[string]int64{e.metaPath: metaBytes, e.dataPath: dataBytes} {
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
	}
	mf, n, err := bm.OpenFile(e.metaPath, false)
	if err != nil {
		t.Fatal(err)
	}
	// Closed after the pool's check, which reads through metaDev.
	t.Cleanup(func() { mf.Close() })
	seed := randtest.Seed(t) // drives the rules' probabilities
	fe := &faultEnv{env: e, metaDev: faultdev.New(mf, seed), metaFile: mf}
	e.md = pooltest.CreateMetadata(t, fe.metaDev, n, testBlockSectors, 0, thinmeta.Options{})
	fe.check = pooltest.Of(e.md)
	data, err := blk.OpenFile(e.dataPath, blk.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fe.dataDev = faultdev.NewBackend(data, seed)
	e.pool = pooltest.OpenEngine(t, e.md, fe.dataDev, cfg)
	t.Cleanup(e.close)
	// Runs before the close and the check: the fault is fixed by then.
	t.Cleanup(func() { fe.metaDev.Heal(); fe.dataDev.Heal() })
	return fe
}

// onDiskNeedsCheck reads the superblock's needs_check flag from the file.
func (e *faultEnv) onDiskNeedsCheck() bool {
	e.t.Helper()
	buf := make([]byte, bm.BlockSize)
	if _, err := e.metaFile.ReadAt(buf, 0); err != nil {
		e.t.Fatal(err)
	}
	return thinmeta.DecodeSuperblock(buf).Flags&thinmeta.FlagNeedsCheck != 0
}

func pattern(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

const bs64k = 65536

// TestDataIOErrorsFailOnlyTheirRequests fails one data read, one
// overwrite, one provisioning write and one flush: each fails its request
// with EIO and nothing else; the pool stays in write mode, the failed
// overwrite leaves the old data, the failed provisioning maps nothing,
// and the dispatcher counts the errors.
func TestDataIOErrorsFailOnlyTheirRequests(t *testing.T) {
	e := newFaultEnv(t, 4<<20, 64*bs64k, thinpool.Config{})
	th := e.thin(1, 64*bs64k)
	for v := 0; v < 8; v++ {
		if err := th.WriteAt(bg, pattern(byte(v+1), bs64k), uint64(v)*bs64k, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, bs64k)
	readBack := func(v int) error { return th.ReadAt(bg, got, uint64(v)*bs64k) }
	expectEIO := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("%s: %v, want EIO", what, err)
		}
	}

	e.dataDev.Inject(faultdev.Rule{Ops: faultdev.OpRead, Count: 1})
	expectEIO("read under a read fault", readBack(2))
	for v := 0; v < 8; v++ {
		if err := readBack(v); err != nil || !bytes.Equal(got, pattern(byte(v+1), bs64k)) {
			t.Fatalf("block %d after the fault: %v", v, err)
		}
	}

	e.dataDev.Inject(faultdev.Rule{Ops: faultdev.OpWrite, Count: 1})
	expectEIO("overwrite under a write fault", th.WriteAt(bg, pattern(0xee, bs64k), 3*bs64k, false))
	if err := readBack(3); err != nil || !bytes.Equal(got, pattern(4, bs64k)) {
		t.Fatalf("a failed overwrite changed the block: %v", err)
	}
	if err := th.WriteAt(bg, pattern(0xee, bs64k), 3*bs64k, false); err != nil {
		t.Fatalf("overwrite after the fault: %v", err)
	}

	free := e.pool.Stats().Metadata.DataBlocksFree
	e.dataDev.Inject(faultdev.Rule{Ops: faultdev.OpWrite, Count: 1})
	expectEIO("provisioning under a write fault", th.WriteAt(bg, pattern(0xaa, bs64k), 20*bs64k, false))
	if err := readBack(20); err != nil || !bytes.Equal(got, make([]byte, bs64k)) {
		t.Fatalf("a failed provisioning mapped the block: %v", err)
	}
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
	if now := e.pool.Stats().Metadata.DataBlocksFree; now != free {
		t.Fatalf("%d free data blocks after a failed provisioning and a commit, %d before", now, free)
	}

	if err := th.WriteAt(bg, pattern(0xbb, bs64k), 21*bs64k, false); err != nil {
		t.Fatal(err)
	}
	e.dataDev.Inject(faultdev.Rule{Ops: faultdev.OpFlush, Count: 1})
	expectEIO("commit under a flush fault", e.pool.Commit(bg))
	if err := e.pool.Commit(bg); err != nil {
		t.Fatalf("commit after the fault: %v", err)
	}

	st := e.pool.Stats()
	if st.Mode != thinpool.ModeWrite || st.MetadataErrors != 0 {
		t.Fatalf("mode %v, %d metadata errors after data faults", st.Mode, st.MetadataErrors)
	}
	tot := st.Dispatcher.Total()
	if r, w, f := tot.Ops[blk.OpRead].Errors, tot.Ops[blk.OpWrite].Errors, tot.Ops[blk.OpFlush].Errors; r != 1 || w != 2 || f != 1 {
		t.Fatalf("dispatcher errors: %d reads, %d writes, %d flushes; want 1, 2, 1", r, w, f)
	}
	if n := e.dataDev.Injected(faultdev.OpAll); n != 4 {
		t.Fatalf("%d faults injected, want 4", n)
	}
}

// TestMetadataWriteFailureGoesReadOnly fails every metadata write but the
// superblock's: the commit fails, the pool goes read-only with
// needs_check set on disk, as dm-thin's metadata_operation_failed does;
// committed data still reads, provisioned blocks still take writes, new
// blocks are refused, and write mode is refused while the flag is set.
func TestMetadataWriteFailureGoesReadOnly(t *testing.T) {
	modes := make(chan thinpool.Mode, 4)
	e := newFaultEnv(t, 4<<20, 64*bs64k, thinpool.Config{OnModeChange: func(_, to thinpool.Mode) { modes <- to }})
	e.check.AllowNeedsCheck()
	th := e.thin(1, 64*bs64k)
	if err := th.WriteAt(bg, pattern(1, bs64k), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
	if err := th.WriteAt(bg, pattern(2, bs64k), bs64k, false); err != nil {
		t.Fatal(err)
	}
	e.metaDev.Inject(faultdev.Rule{Ops: faultdev.OpWrite, Off: bm.BlockSize})
	err := e.pool.Commit(bg)
	if !errors.Is(err, thinpool.ErrReadOnly) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("commit under a metadata write fault: %v", err)
	}
	if m := <-modes; m != thinpool.ModeReadOnly {
		t.Fatalf("mode %v", m)
	}
	st := e.pool.Stats()
	if st.Mode != thinpool.ModeReadOnly || !st.Metadata.NeedsCheck || st.MetadataErrors != 1 {
		t.Fatalf("mode %v, needs_check %v, %d metadata errors", st.Mode, st.Metadata.NeedsCheck, st.MetadataErrors)
	}
	if !e.onDiskNeedsCheck() {
		t.Fatal("needs_check is not set in the superblock on disk")
	}
	got := make([]byte, bs64k)
	if err := th.ReadAt(bg, got, 0); err != nil || !bytes.Equal(got, pattern(1, bs64k)) {
		t.Fatalf("committed data in read-only mode: %v", err)
	}
	if err := th.ReadAt(bg, got, bs64k); err != nil || !bytes.Equal(got, make([]byte, bs64k)) {
		t.Fatalf("the aborted transaction's block: %v (it must read as zeroes)", err)
	}
	if err := th.WriteAt(bg, pattern(3, 512), 0, false); err != nil {
		t.Fatalf("overwrite of a provisioned block in read-only mode: %v", err)
	}
	if err := th.WriteAt(bg, pattern(3, 512), 5*bs64k, false); !errors.Is(err, thinpool.ErrReadOnly) {
		t.Fatalf("a new block in read-only mode: %v", err)
	}
	e.metaDev.Heal()
	if err := e.pool.SetWriteMode(); err == nil {
		t.Fatal("write mode accepted while the metadata needs a check")
	}
}

// TestMetadataFlushFailureGoesReadOnly fails every metadata sync: the
// needs_check flag cannot reach the disk, but the pool holds it, reports
// it, and is read-only.
func TestMetadataFlushFailureGoesReadOnly(t *testing.T) {
	e := newFaultEnv(t, 4<<20, 64*bs64k, thinpool.Config{})
	e.check.AllowNeedsCheck()
	th := e.thin(1, 64*bs64k)
	if err := th.WriteAt(bg, pattern(1, bs64k), 0, false); err != nil {
		t.Fatal(err)
	}
	e.metaDev.Inject(faultdev.Rule{Ops: faultdev.OpFlush})
	if err := e.pool.Commit(bg); !errors.Is(err, thinpool.ErrReadOnly) {
		t.Fatalf("commit under a metadata flush fault: %v", err)
	}
	st := e.pool.Stats()
	if st.Mode != thinpool.ModeReadOnly || !st.Metadata.NeedsCheck {
		t.Fatalf("mode %v, needs_check %v", st.Mode, st.Metadata.NeedsCheck)
	}
}

// TestMetadataDeviceLostGoesToFail fails every metadata read and write:
// the commit fails, the abort cannot reread the last commit, and the pool
// fails (dm-thin's PM_FAIL): every request gets ErrFailed.
func TestMetadataDeviceLostGoesToFail(t *testing.T) {
	e := newFaultEnv(t, 4<<20, 64*bs64k, thinpool.Config{})
	e.check.AllowNeedsCheck()
	th := e.thin(1, 64*bs64k)
	if err := th.WriteAt(bg, pattern(1, bs64k), 0, false); err != nil {
		t.Fatal(err)
	}
	e.metaDev.Inject(faultdev.Rule{Ops: faultdev.OpRead | faultdev.OpWrite})
	if err := e.pool.Commit(bg); !errors.Is(err, thinpool.ErrFailed) {
		t.Fatalf("commit with the metadata device gone: %v", err)
	}
	if m := e.pool.Mode(); m != thinpool.ModeFail {
		t.Fatalf("mode %v", m)
	}
	got := make([]byte, 512)
	if err := th.ReadAt(bg, got, 0); !errors.Is(err, thinpool.ErrFailed) {
		t.Fatalf("read in fail mode: %v", err)
	}
	if err := th.WriteAt(bg, got, 0, false); !errors.Is(err, thinpool.ErrFailed) {
		t.Fatalf("write in fail mode: %v", err)
	}
}

// TestCutDropsWhatWasNotFlushed cuts the power under both devices of a
// pool on files: reopened from the files, the pool holds every block
// written before the last successful commit and none written after it
// (keep 0), and both checkers pass.
func TestCutDropsWhatWasNotFlushed(t *testing.T) {
	e := newFaultEnv(t, 4<<20, 64*bs64k, thinpool.Config{})
	th := e.thin(1, 64*bs64k)
	for v := uint64(0); v < 4; v++ {
		if err := th.WriteAt(bg, pattern(byte(v+1), bs64k), v*bs64k, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
	if err := th.WriteAt(bg, pattern(9, bs64k), 0, false); err != nil { // in place
		t.Fatal(err)
	}
	if err := th.WriteAt(bg, pattern(9, bs64k), 8*bs64k, false); err != nil { // provisioned
		t.Fatal(err)
	}
	if e.metaDev.Unflushed() == 0 && e.dataDev.Unflushed() == 0 {
		t.Fatal("nothing unflushed to lose")
	}
	if err := e.metaDev.Cut(0); err != nil {
		t.Fatal(err)
	}
	if err := e.dataDev.Cut(0); err != nil {
		t.Fatal(err)
	}
	if err := th.WriteAt(bg, pattern(7, 512), bs64k, false); !errors.Is(err, faultdev.ErrPowerCut) && !errors.Is(err, thinpool.ErrReadOnly) && !errors.Is(err, thinpool.ErrFailed) {
		t.Fatalf("a write after the cut: %v", err)
	}
	th.Close()
	e.pool.Close() // its last commit fails: the power is gone
	e.pool = nil
	e.md.Close()
	e.md = nil

	// The power comes back; the data file was closed with the pool.
	e.metaDev.PowerOn()
	data, err := blk.OpenFile(e.dataPath, blk.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.md = pooltest.OpenMetadata(e.t, e.metaDev, (4<<20)/bm.BlockSize, thinmeta.Options{})
	e.pool = pooltest.OpenEngine(e.t, e.md, data, thinpool.Config{})
	th = e.thin(1, 64*bs64k)
	got := make([]byte, bs64k)
	for v, want := range map[uint64]byte{0: 1, 1: 2, 2: 3, 3: 4, 8: 0} {
		if err := th.ReadAt(bg, got, v*bs64k); err != nil || !bytes.Equal(got, pattern(want, bs64k)) {
			t.Fatalf("block %d after the cut: %v, holds %d, want %d", v, err, got[0], want)
		}
	}
}

// TestRandomDataFaultsAgainstAModel runs random writes (each within one
// data block), reads, flushes and snapshots while the data device fails
// a random share of reads, writes and flushes (drawn from the test's
// seed). A failed write must leave every byte it covered as it was,
// whether it overwrote in place, provisioned or broke sharing; every
// read that succeeds must match the model; the pool never leaves write
// mode; and with the fault fixed, the volume and its last snapshot read
// back whole.
func TestRandomDataFaultsAgainstAModel(t *testing.T) {
	const blocks = 24
	const units = blocks * bs64k / unit
	e := newFaultEnv(t, 4<<20, 256*bs64k, thinpool.Config{})
	th := e.thin(1, blocks*bs64k)
	rng := randtest.New(t)
	model := make([]uint64, units) // version per 4 KiB unit; 0 is zeroes
	maybe := map[int][]uint64{}    // units failed FUA writes may have changed, and to what
	var snap []uint64
	var snapMaybe map[int][]uint64 // as maybe, when the snapshot was taken
	var snapNext uint64
	snapID := uint64(1)
	e.dataDev.Inject(faultdev.Rule{Ops: faultdev.OpRead | faultdev.OpWrite | faultdev.OpFlush, Prob: 0.15})
	buf := make([]byte, bs64k)
	next := uint64(1)
	var failedWrites, failedReads, failedFlushes int
	for op := 0; op < 600; op++ {
		switch x := rng.IntN(100); {
		case x < 55:
			b := rng.IntN(blocks)
			first := rng.IntN(16)
			n := 1 + rng.IntN(16-first)
			u := b*16 + first
			for i := 0; i < n; i++ {
				stamp(buf[i*unit:(i+1)*unit], next+uint64(i))
			}
			fua := rng.IntN(6) == 0
			err := th.WriteAt(bg, buf[:n*unit], uint64(u)*unit, fua)
			switch {
			case err == nil:
				for i := 0; i < n; i++ {
					model[u+i] = next + uint64(i)
					delete(maybe, u+i)
				}
			case errors.Is(err, syscall.EIO):
				failedWrites++
				if fua {
					// The write may have landed and only the flush that
					// makes it durable failed: either version may read.
					for i := 0; i < n; i++ {
						maybe[u+i] = append(maybe[u+i], next+uint64(i))
					}
				}
			default:
				t.Fatalf("write: %v", err)
			}
			next += uint64(n)
		case x < 90:
			u := rng.IntN(units)
			n := 1 + rng.IntN(min(32, units-u))
			got := make([]byte, n*unit)
			if err := th.ReadAt(bg, got, uint64(u)*unit); err != nil {
				if !errors.Is(err, syscall.EIO) {
					t.Fatalf("read: %v", err)
				}
				failedReads++
				continue
			}
			for i := 0; i < n; i++ {
				v, ok := version(got[i*unit : (i+1)*unit])
				if ok && (v == model[u+i] || slices.Contains(maybe[u+i], v)) {
					model[u+i] = v
					delete(maybe, u+i)
					continue
				}
				if !ok || v != model[u+i] {
					t.Fatalf("op %d: unit %d holds version %d (whole %v), the model %d", op, u+i, v, ok, model[u+i])
				}
			}
		case x < 97:
			if err := th.Flush(bg); err != nil {
				if !errors.Is(err, syscall.EIO) {
					t.Fatalf("flush: %v", err)
				}
				failedFlushes++
			}
		default:
			snapID++
			if err := e.pool.CreateSnap(bg, snapID, 1); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			snap = append(snap[:0], model...)
			snapMaybe = maps.Clone(maybe)
			snapNext = next
		}
		if m := e.pool.Mode(); m != thinpool.ModeWrite {
			t.Fatalf("op %d: mode %v under data faults", op, m)
		}
	}
	t.Logf("%d writes, %d reads and %d flushes failed; %d snapshots", failedWrites, failedReads, failedFlushes, snapID-1)
	if failedWrites == 0 || failedReads == 0 {
		t.Fatal("the rule failed no write or no read")
	}
	e.dataDev.Heal()
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
	for u, vs := range maybe {
		// Read them once more to settle them.
		got := make([]byte, unit)
		if err := th.ReadAt(bg, got, uint64(u)*unit); err != nil {
			t.Fatal(err)
		}
		if g, ok := version(got); ok && slices.Contains(vs, g) {
			model[u] = g
		}
	}
	verify := func(th *thinpool.Thin, want []uint64, maybe map[int][]uint64, what string) {
		got := make([]byte, units*unit)
		if err := th.ReadAt(bg, got, 0); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for u := range want {
			v, ok := version(got[u*unit : (u+1)*unit])
			if ok && slices.Contains(maybe[u], v) {
				continue
			}
			if !ok || v != want[u] {
				t.Fatalf("%s: unit %d holds version %d (whole %v), want %d (versions up to %d were written before it)", what, u, v, ok, want[u], snapNext)
			}
		}
	}
	verify(th, model, nil, "the volume")
	if snapID > 1 {
		verify(e.thin(snapID, blocks*bs64k), snap, snapMaybe, "the last snapshot")
	}
	if st := e.pool.Stats(); st.MetadataErrors != 0 {
		t.Fatalf("%d metadata errors from data faults", st.MetadataErrors)
	}
}

// TestADataFaultFailsOnlyItsBlock fails every read and write of one data
// block while eight goroutines read and overwrite their own blocks: every
// request on that block fails with EIO, every other one succeeds.
func TestADataFaultFailsOnlyItsBlock(t *testing.T) {
	e := newFaultEnv(t, 4<<20, 64*bs64k, thinpool.Config{})
	th := e.thin(1, 64*bs64k)
	const bad = 5
	for v := uint64(0); v < 16; v++ {
		if err := th.WriteAt(bg, pattern(byte(v+1), bs64k), v*bs64k, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.pool.Commit(bg); err != nil {
		t.Fatal(err)
	}
	l, err := e.pool.Metadata().Find(1, bad)
	if err != nil {
		t.Fatal(err)
	}
	e.dataDev.Inject(faultdev.Rule{Ops: faultdev.OpRead | faultdev.OpWrite, Off: int64(l.DataBlock * bs64k), Len: bs64k})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for g := uint64(0); g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			for i := uint64(0); i < 200; i++ {
				v := g*2 + i%2 // blocks 2g and 2g+1
				off := v*bs64k + (i*4096)%bs64k
				var err error
				if i%3 == 0 {
					err = th.WriteAt(bg, pattern(byte(v+1), 4096), off, false)
				} else {
					err = th.ReadAt(bg, buf, off)
					if err == nil && !bytes.Equal(buf, pattern(byte(v+1), 4096)) {
						err = fmt.Errorf("block %d reads wrong data", v)
					}
				}
				switch {
				case v == bad && !errors.Is(err, syscall.EIO):
					errs <- fmt.Errorf("a request on the failing block %d: %v", v, err)
					return
				case v != bad && err != nil:
					errs <- fmt.Errorf("a request on block %d: %v", v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if m := e.pool.Mode(); m != thinpool.ModeWrite {
		t.Fatalf("mode %v", m)
	}
}
