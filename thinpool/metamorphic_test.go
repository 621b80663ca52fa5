package thinpool_test

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/thind-storage/thind/blk"
	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/thinpool"
)

// The metamorphic runner, after pebble's metamorphic tests: one random
// operation log runs on pools that differ only in settings that must not
// change what a volume holds (data block size, metadata cache size, commit
// interval, hole tracking). Every read must return the same bytes under
// every setting, and the mappings must agree: exactly (up to the numbering
// of data blocks) where the block size is the same, and seen at the
// largest block size otherwise.
var metamorphicOps = flag.Int("metamorphic.ops", 250, "operations per metamorphic run (more for a longer run)")

// metaConfig is one setting the log runs under.
type metaConfig struct {
	name         string
	blockSectors uint32
	cacheBytes   int64
	cfg          thinpool.Config
}

const (
	metaThinSize   = 4 << 20 // bytes per volume
	metaMaxThins   = 5
	metaCoarse     = 512 << 10 // the largest block size below: discards align to it
	metaDataBytes  = 96 << 20
	metaMetaBytes  = 8 << 20
	metaMaxWriteKB = 192
)

func metamorphicConfigs() []metaConfig {
	return []metaConfig{
		{name: "bs64k", blockSectors: 128, cfg: thinpool.Config{CommitInterval: time.Hour}},
		{name: "bs64k-cache", blockSectors: 128, cacheBytes: 64 << 10, cfg: thinpool.Config{CommitInterval: time.Hour}},
		{name: "bs64k-commit1ms", blockSectors: 128, cfg: thinpool.Config{CommitInterval: time.Millisecond}},
		{name: "bs64k-noholes", blockSectors: 128, cfg: thinpool.Config{CommitInterval: 5 * time.Millisecond, IgnoreHoles: true}},
		{name: "bs128k", blockSectors: 256, cfg: thinpool.Config{CommitInterval: 2 * time.Millisecond}},
		{name: "bs512k-cache", blockSectors: 1024, cacheBytes: 64 << 10, cfg: thinpool.Config{CommitInterval: time.Hour, IgnoreHoles: true}},
	}
}

// metaOp is one operation of the log.
type metaOp struct {
	kind    string // write, read, discard, zero, snap, delete, commit, flush
	dev     uint64
	origin  uint64 // snap: the origin
	off, n  uint64
	pattern uint64 // write: seeds the bytes
}

func (o metaOp) String() string {
	switch o.kind {
	case "snap":
		return fmt.Sprintf("snap %d of %d", o.dev, o.origin)
	case "delete", "commit", "flush":
		return fmt.Sprintf("%s %d", o.kind, o.dev)
	}
	return fmt.Sprintf("%s %d [%d,+%d)", o.kind, o.dev, o.off, o.n)
}

// metamorphicLog draws n operations over the volumes it creates; it
// tracks which volumes exist so that every operation is valid.
func metamorphicLog(rng *rand.Rand, n int) []metaOp {
	live := []uint64{1}
	next := uint64(2)
	var log []metaOp
	for len(log) < n {
		dev := live[rng.IntN(len(live))]
		switch p := rng.IntN(100); {
		case p < 45:
			off := rng.Uint64N(metaThinSize - 1)
			n := min(1+rng.Uint64N(metaMaxWriteKB<<10), metaThinSize-off)
			log = append(log, metaOp{kind: "write", dev: dev, off: off, n: n, pattern: rng.Uint64()})
		case p < 70:
			off := rng.Uint64N(metaThinSize - 1)
			n := min(1+rng.Uint64N(256<<10), metaThinSize-off)
			log = append(log, metaOp{kind: "read", dev: dev, off: off, n: n})
		case p < 78, p < 84:
			kind := "discard"
			if p >= 78 {
				kind = "zero"
			}
			chunks := uint64(metaThinSize / metaCoarse)
			first := rng.Uint64N(chunks)
			count := 1 + rng.Uint64N(min(3, chunks-first))
			log = append(log, metaOp{kind: kind, dev: dev, off: first * metaCoarse, n: count * metaCoarse})
		case p < 89 && len(live) < metaMaxThins:
			log = append(log, metaOp{kind: "snap", dev: next, origin: dev})
			live = append(live, next)
			next++
		case p < 91 && len(live) > 1:
			log = append(log, metaOp{kind: "delete", dev: dev})
			live = slices.DeleteFunc(live, func(d uint64) bool { return d == dev })
		case p < 95:
			log = append(log, metaOp{kind: "commit"})
		default:
			log = append(log, metaOp{kind: "flush", dev: dev})
		}
	}
	return log
}

// metaResult is what a run observed: a digest of every read, in order,
// and each volume's final mapping.
type metaResult struct {
	reads []string
	// exact: per volume, its mapped virtual blocks, each with the number
	// of the data block in order of first appearance, so that sharing
	// shows and allocation order does not.
	exact map[uint64][]string
	// coarse: per volume, the metaCoarse-sized chunks holding a mapping.
	coarse map[uint64][]uint64
	final  map[uint64]string // sha256 of each volume's whole contents
}

func TestMetamorphicSameReadsAndMappings(t *testing.T) {
	seed := randtest.Seed(t)
	log := metamorphicLog(randtest.FromSeed(seed), *metamorphicOps)
	configs := metamorphicConfigs()
	results := make([]metaResult, len(configs))
	for i, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			results[i] = runMetamorphic(t, c, log)
		})
	}
	if t.Failed() {
		return
	}
	base := results[0]
	for i, c := range configs[1:] {
		r := results[i+1]
		if i := firstDiff(base.reads, r.reads); i >= 0 {
			t.Errorf("%s: read %d differs from %s's (%d reads)", c.name, i, configs[0].name, len(base.reads))
		}
		if fmt.Sprint(base.final) != fmt.Sprint(r.final) {
			t.Errorf("%s: final contents differ from %s's:\n%v\n%v", c.name, configs[0].name, r.final, base.final)
		}
		if fmt.Sprint(base.coarse) != fmt.Sprint(r.coarse) {
			t.Errorf("%s: mapped %d KiB chunks differ from %s's:\n%v\n%v", c.name, metaCoarse>>10, configs[0].name, r.coarse, base.coarse)
		}
		if c.blockSectors == configs[0].blockSectors && fmt.Sprint(base.exact) != fmt.Sprint(r.exact) {
			t.Errorf("%s: mappings differ from %s's at the same block size", c.name, configs[0].name)
		}
	}
	t.Logf("%d operations, %d reads, %d volumes at the end, under %d settings", len(log), len(base.reads), len(base.final), len(configs))
}

func firstDiff(a, b []string) int {
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			return i
		}
	}
	return -1
}

// runMetamorphic runs log on a new pool made with c.
func runMetamorphic(t *testing.T, c metaConfig, log []metaOp) metaResult {
	dir := t.TempDir()
	metaPath, dataPath := filepath.Join(dir, "metadata"), filepath.Join(dir, "data")
	for path, size := range map[string]int64{metaPath: metaMetaBytes, dataPath: metaDataBytes} {
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
	}
	mf, nr, err := bm.OpenFile(metaPath, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mf.Close() })
	md := pooltest.CreateMetadata(t, mf, nr, c.blockSectors, 0, thinmeta.Options{CacheBytes: c.cacheBytes})
	data, err := blk.OpenFile(dataPath, blk.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool := pooltest.OpenEngine(t, md, data, c.cfg)
	thins := map[uint64]*thinpool.Thin{}
	open := func(id uint64) {
		th, err := pool.OpenThin(id, metaThinSize)
		if err != nil {
			t.Fatalf("open thin %d: %v", id, err)
		}
		thins[id] = th
	}
	if err := pool.CreateThin(1); err != nil {
		t.Fatal(err)
	}
	open(1)
	t.Cleanup(func() {
		for _, th := range thins {
			th.Close()
		}
	})

	var res metaResult
	buf := make([]byte, 256<<10)
	for i, op := range log {
		th := thins[op.dev]
		var err error
		switch op.kind {
		case "write":
			err = th.WriteAt(bg, metaPattern(op.pattern, op.n), op.off, false)
		case "read":
			b := buf[:op.n]
			if err = th.ReadAt(bg, b, op.off); err == nil {
				res.reads = append(res.reads, fmt.Sprintf("%x", sha256.Sum256(b)))
			}
		case "discard":
			err = th.Discard(bg, op.off, op.n)
		case "zero":
			err = th.WriteZeroes(bg, op.off, op.n, false, false)
		case "snap":
			if err = pool.CreateSnap(bg, op.dev, op.origin); err == nil {
				open(op.dev)
			}
		case "delete":
			if err = th.Close(); err == nil {
				delete(thins, op.dev)
				err = pool.DeleteThin(bg, op.dev)
			}
		case "commit":
			err = pool.Commit(bg)
		case "flush":
			err = th.Flush(bg)
		}
		if err != nil {
			t.Fatalf("op %d (%v): %v", i, op, err)
		}
	}

	res.exact, res.coarse, res.final = map[uint64][]string{}, map[uint64][]uint64{}, map[uint64]string{}
	bs := pool.BlockSize()
	names := map[uint64]int{}
	ids := slices.Sorted(func(yield func(uint64) bool) {
		for id := range thins {
			if !yield(id) {
				return
			}
		}
	})
	whole := make([]byte, metaThinSize)
	for _, id := range ids {
		var exact []string
		var coarse []uint64
		err := pool.Metadata().WalkMappings(id, 0, metaThinSize/bs, func(v uint64, l thinmeta.Lookup) error {
			n, ok := names[l.DataBlock]
			if !ok {
				n = len(names)
				names[l.DataBlock] = n
			}
			exact = append(exact, fmt.Sprintf("%d:%d", v, n))
			if ch := v * bs / metaCoarse; len(coarse) == 0 || coarse[len(coarse)-1] != ch {
				coarse = append(coarse, ch)
			}
			return nil
		})
		if err != nil && !errors.Is(err, thinmeta.ErrNotMapped) {
			t.Fatalf("mappings of %d: %v", id, err)
		}
		res.exact[id], res.coarse[id] = exact, coarse
		if err := thins[id].ReadAt(bg, whole, 0); err != nil {
			t.Fatal(err)
		}
		res.final[id] = fmt.Sprintf("%x", sha256.Sum256(whole))[:16]
	}
	t.Logf("%s: %d mapped blocks of %d KiB in %d volumes", c.name, len(names), bs>>10, len(ids))
	return res
}

// metaPattern returns n bytes drawn from seed: the same write gives the
// same bytes under every setting.
func metaPattern(seed, n uint64) []byte {
	b := make([]byte, n)
	r := randtest.Stream(seed, seed^0x9e3779b97f4a7c15)
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}
