package thinpool_test

import (
	"encoding/binary"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/thinpool"
)

const (
	unit      = 4096
	volBytes  = 8 << 20
	volUnits  = volBytes / unit
	metaBytes = 8 << 20
	dataBytes = 64 << 20
)

// durModel tracks, per 4 KiB unit of a volume, which versions a power cut
// may leave: the durable one (covered by a FLUSH or a FUA write) and every
// one written since. Version 0 is zeroes.
type durModel struct {
	durable [volUnits]uint64
	since   [volUnits][]uint64
}

func (m *durModel) write(u int, v uint64, fua bool) {
	if fua {
		m.durable[u], m.since[u] = v, m.since[u][:0]
		return
	}
	m.since[u] = append(m.since[u], v)
}

func (m *durModel) flush() {
	for u := range m.since {
		if n := len(m.since[u]); n > 0 {
			m.durable[u] = m.since[u][n-1]
			m.since[u] = m.since[u][:0]
		}
	}
}

func (m *durModel) allowed(u int, v uint64) bool {
	if v == m.durable[u] {
		return true
	}
	for _, w := range m.since[u] {
		if w == v {
			return true
		}
	}
	return false
}

// stamp fills a unit with its version, so a read tells which one it is.
func stamp(b []byte, v uint64) {
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], v)
	}
}

func version(b []byte) (uint64, bool) {
	v := binary.LittleEndian.Uint64(b)
	for i := 8; i < len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != v {
			return 0, false
		}
	}
	return v, true
}

// TestFlushedWritesSurvivePowerCuts runs random writes, FUA writes,
// flushes, discards and snapshots against a pool on memory devices that
// remember what was synced, cuts the power at random moments (each device
// keeping a random share of its unsynced writes), reopens, and checks that
// every unit holds its durable version or a later one, that the metadata
// passes both checkers, and goes on from there. With holes the pool
// provisions blocks the data device reports as never written without
// flushing first; with ignore-holes it flushes before every commit that
// maps a new block.
func TestFlushedWritesSurvivePowerCuts(t *testing.T) {
	seeds := 2
	if n, err := strconv.Atoi(os.Getenv("THIND_POWERCUT_SEEDS")); err == nil {
		seeds = n // the long run, on demand
	}
	for _, ignoreHoles := range []bool{false, true} {
		t.Run(map[bool]string{false: "holes", true: "ignore-holes"}[ignoreHoles], func(t *testing.T) {
			randtest.Each(t, seeds, func(t *testing.T, seed uint64) {
				powerCuts(t, seed, ignoreHoles, 12, 80)
			})
		})
	}
}

func powerCuts(t *testing.T, seed uint64, ignoreHoles bool, cycles, ops int) {
	rng := randtest.Stream(seed, 11)
	metaDev := bm.NewMemDevice(metaBytes)
	dataDev := bm.NewMemDevice(dataBytes)
	// Every device the pool runs on, the first and each crash clone it is
	// reopened on, is checked at the end by pooltest.
	md := pooltest.CreateMetadata(t, metaDev, metaBytes/bm.BlockSize, testBlockSectors, 0, thinmeta.Options{})
	open := func(md *thinmeta.Pool, data *bm.MemDevice) (*thinpool.Pool, *thinpool.Thin) {
		p := pooltest.OpenEngine(t, md, memData{data}, thinpool.Config{
			Logger: testLogger(t), ErrorIfNoSpace: true, IgnoreHoles: ignoreHoles,
			// Timer commits between the operations, which flush data
			// only when the transaction needs it.
			CommitInterval: time.Millisecond,
		})
		if _, err := md.Device(1); err != nil {
			if err := p.CreateThin(1); err != nil {
				t.Fatal(err)
			}
		}
		th, err := p.OpenThin(1, volBytes)
		if err != nil {
			t.Fatal(err)
		}
		return p, th
	}
	pool, th := open(md, dataDev)
	m := &durModel{}
	next := uint64(1)
	nextSnap := uint64(100)
	buf := make([]byte, 64*unit)
	for cycle := 0; cycle < cycles; cycle++ {
		for op := 0; op < ops; op++ {
			switch x := rng.IntN(100); {
			case x < 60:
				n := 1 + rng.IntN(32)
				u := rng.IntN(volUnits - n)
				fua := rng.IntN(5) == 0
				for i := 0; i < n; i++ {
					stamp(buf[i*unit:(i+1)*unit], next)
					m.write(u+i, next, fua)
					next++
				}
				if err := th.WriteAt(bg, buf[:n*unit], uint64(u*unit), fua); err != nil {
					pool.Commit(bg)
					for _, d := range md.Devices() {
						t.Logf("device %d maps %d blocks", d.ID, d.MappedBlocks)
					}
					t.Logf("free %d of %d", md.FreeDataBlocks(), md.DataBlocks())
					r := checkDurable(t, metaDev)
					t.Logf("check: %d data blocks used, %d mappings", r.DataBlocksUsed, r.Mappings)
					t.Fatal(err)
				}
			case x < 75:
				if err := th.Flush(bg); err != nil {
					t.Fatal(err)
				}
				m.flush()
			case x < 88:
				// Whole blocks only: partial ones are left alone.
				b := rng.IntN(volBytes / 65536)
				n := 1 + rng.IntN(4)
				if b+n > volBytes/65536 {
					n = volBytes/65536 - b
				}
				if err := th.Discard(bg, uint64(b*65536), uint64(n*65536)); err != nil {
					t.Fatal(err)
				}
				for u := b * 16; u < (b+n)*16; u++ {
					m.write(u, 0, false)
				}
			case x < 93:
				// At most three snapshots live at a time, so copy on
				// write cannot fill the data device.
				if len(md.Devices()) > 3 {
					old := md.Devices()[1].ID
					if err := pool.DeleteThin(bg, old); err != nil {
						t.Fatal(err)
					}
				}
				if err := pool.CreateSnap(bg, nextSnap, 1); err != nil {
					t.Fatal(err)
				}
				nextSnap++
			}
		}
		// Power cut: each device keeps its synced writes and a random
		// share of the others.
		keepMeta, keepData := rng.Float64(), rng.Float64()
		metaDev = metaDev.CrashClone(keepMeta, rng)
		dataDev = dataDev.CrashClone(keepData, rng)
		// The old pool is gone with the power; drop it without a
		// commit (its devices are no longer the ones we look at).
		th.Close()
		pool.Close()
		md.Close()
		checkDurable(t, metaDev)
		md = pooltest.OpenMetadata(t, metaDev, metaBytes/bm.BlockSize, thinmeta.Options{})
		pool, th = open(md, dataDev)
		got := make([]byte, volBytes)
		if err := th.ReadAt(bg, got, 0); err != nil {
			t.Fatal(err)
		}
		for u := 0; u < volUnits; u++ {
			v, ok := version(got[u*unit : (u+1)*unit])
			if !ok || !m.allowed(u, v) {
				t.Fatalf("cycle %d (kept %.2f of metadata, %.2f of data): unit %d holds version %d (whole: %v), durable is %d, later %v",
					cycle, keepMeta, keepData, u, v, ok, m.durable[u], m.since[u])
			}
			// What survived is the new truth.
			m.durable[u], m.since[u] = v, m.since[u][:0]
		}
	}
	th.Close()
	pool.Close()
	md.Close()
}
