package thinpool_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/metastream"
	"github.com/thind-storage/thind/thinpool"
	"github.com/thind-storage/thind/thinxml"
)

const (
	stressVolBytes  = 16 << 20
	stressBlock     = 65536
	stressWorkers   = 8 // per volume
	stressRegion    = stressVolBytes / stressWorkers
	stressVolBlocks = stressVolBytes / stressBlock
)

// volModel is what a volume must hold: its bytes, and which blocks are
// mapped.
type volModel struct {
	data   []byte
	mapped []bool
}

func newVolModel() *volModel {
	return &volModel{data: make([]byte, stressVolBytes), mapped: make([]bool, stressVolBlocks)}
}

func (m *volModel) clone() *volModel {
	return &volModel{data: bytes.Clone(m.data), mapped: append([]bool(nil), m.mapped...)}
}

func (m *volModel) mappedCount() uint64 {
	n := uint64(0)
	for _, b := range m.mapped {
		if b {
			n++
		}
	}
	return n
}

// stress drives two volumes with eight workers each (each owning an
// eighth of its volume), plus snapshots of the live volumes and of
// snapshots, snapshot deletes and snapshot reads, all at once.
type stress struct {
	t      *testing.T
	e      *env
	seed   uint64               // every goroutine's generator derives from it
	vols   map[uint64]*volModel // live volumes and snapshots
	volsMu sync.Mutex
	owners map[uint64][]*sync.Mutex // per live volume, its workers' locks
	pause  sync.RWMutex             // workers hold it shared per op
	nextID atomic.Uint64
	ops    atomic.Uint64
	failed atomic.Bool
}

// TestConcurrentStressAgainstAModel runs the stress for a few seconds in
// CI (THIND_STRESS_SECONDS for longer), stopping now and then to commit,
// check the metadata with thind and thin_check, and compare thin_dump's
// mapping counts with the model.
func TestConcurrentStressAgainstAModel(t *testing.T) {
	seconds := 4
	if s := os.Getenv("THIND_STRESS_SECONDS"); s != "" {
		fmt.Sscan(s, &seconds)
	}
	e := newFileEnv(t, 32<<20, 256<<20, thinpool.Config{CommitInterval: 50 * time.Millisecond})
	s := &stress{t: t, e: e, seed: randtest.Seed(t), vols: map[uint64]*volModel{}, owners: map[uint64][]*sync.Mutex{}}
	s.nextID.Store(100)
	for _, id := range []uint64{1, 2} {
		if err := e.pool.CreateThin(id); err != nil {
			t.Fatal(err)
		}
		s.vols[id] = newVolModel()
		locks := make([]*sync.Mutex, stressWorkers)
		for i := range locks {
			locks[i] = &sync.Mutex{}
		}
		s.owners[id] = locks
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, id := range []uint64{1, 2} {
		th, err := e.pool.OpenThin(id, stressVolBytes)
		if err != nil {
			t.Fatal(err)
		}
		defer th.Close()
		for w := 0; w < stressWorkers; w++ {
			wg.Add(1)
			go func(th *thinpool.Thin, w int) {
				defer wg.Done()
				s.worker(th, w, s.seed^uint64(w+1)*uint64(th.ID())*7919, stop)
			}(th, w)
		}
	}
	wg.Add(2)
	go func() { defer wg.Done(); s.snapshotter(stop) }()
	go func() { defer wg.Done(); s.snapshotReader(stop) }()

	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	checks := 0
	for time.Now().Before(deadline) && !s.failed.Load() {
		time.Sleep(700 * time.Millisecond)
		s.pause.Lock()
		s.checkPoint()
		s.pause.Unlock()
		checks++
	}
	close(stop)
	wg.Wait()
	if s.failed.Load() {
		t.FailNow()
	}
	s.checkPoint()
	t.Logf("%d operations, %d checkpoints, %d devices at the end, %+v prison waits", s.ops.Load(), checks+1, len(s.vols), e.pool.Stats().PrisonWaits)
}

func (s *stress) fail(format string, args ...any) {
	s.failed.Store(true)
	s.t.Errorf(format, args...)
}

func (s *stress) worker(th *thinpool.Thin, w int, seed uint64, stop chan struct{}) {
	rng := randtest.Stream(seed, 1)
	lock := s.owners[th.ID()][w]
	s.volsMu.Lock()
	m := s.vols[th.ID()]
	s.volsMu.Unlock()
	base := uint64(w) * stressRegion
	buf := make([]byte, 256<<10)
	for !s.failed.Load() {
		select {
		case <-stop:
			return
		default:
		}
		s.pause.RLock()
		lock.Lock()
		off := base + rng.Uint64N(stressRegion)
		n := 1 + rng.Uint64N(min(uint64(len(buf)), base+stressRegion-off))
		var err error
		switch x := rng.IntN(100); {
		case x < 45:
			fua := rng.IntN(10) == 0
			for i := range buf[:n] {
				buf[i] = byte(rng.Uint32())
			}
			if err = th.WriteAt(bg, buf[:n], off, fua); err == nil {
				copy(m.data[off:], buf[:n])
				for b := off / stressBlock; b <= (off+n-1)/stressBlock; b++ {
					m.mapped[b] = true
				}
			}
		case x < 75:
			if err = th.ReadAt(bg, buf[:n], off); err == nil && !bytes.Equal(buf[:n], m.data[off:off+n]) {
				s.fail("volume %d: read [%d,+%d) differs from the model", th.ID(), off, n)
			}
		case x < 85:
			if err = th.Discard(bg, off, n); err == nil {
				first, end := (off+stressBlock-1)/stressBlock, (off+n)/stressBlock
				for b := first; b < end; b++ {
					clear(m.data[b*stressBlock : (b+1)*stressBlock])
					m.mapped[b] = false
				}
			}
		case x < 95:
			if err = th.WriteZeroes(bg, off, n, false, false); err == nil {
				clear(m.data[off : off+n])
				first, end := (off+stressBlock-1)/stressBlock, (off+n)/stressBlock
				for b := first; b < end; b++ {
					m.mapped[b] = false
				}
			}
		default:
			err = th.Flush(bg)
		}
		lock.Unlock()
		s.pause.RUnlock()
		if err != nil {
			s.fail("volume %d worker %d: %v", th.ID(), w, err)
			return
		}
		s.ops.Add(1)
	}
}

// snapshotter snapshots live volumes (quiescing their workers' model
// updates) and snapshots, and deletes old snapshots.
func (s *stress) snapshotter(stop chan struct{}) {
	rng := rand.New(rand.NewPCG(s.seed, 2))
	p := s.e.pool
	for !s.failed.Load() {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		s.pause.RLock()
		s.volsMu.Lock()
		var snaps []uint64
		for id := range s.vols {
			if id >= 100 {
				snaps = append(snaps, id)
			}
		}
		s.volsMu.Unlock()
		id := s.nextID.Add(1)
		var err error
		switch x := rng.IntN(10); {
		case x < 4:
			origin := uint64(1 + rng.IntN(2))
			for _, l := range s.owners[origin] {
				l.Lock()
			}
			if err = p.CreateSnap(bg, id, origin); err == nil {
				s.volsMu.Lock()
				s.vols[id] = s.vols[origin].clone()
				s.volsMu.Unlock()
			}
			for _, l := range s.owners[origin] {
				l.Unlock()
			}
		case x < 6 && len(snaps) > 0:
			origin := snaps[rng.IntN(len(snaps))]
			if err = p.CreateSnap(bg, id, origin); err == nil {
				s.volsMu.Lock()
				s.vols[id] = s.vols[origin].clone()
				s.volsMu.Unlock()
			}
		case len(snaps) > 4:
			victim := snaps[rng.IntN(len(snaps))]
			// Under the set's lock: a reader must not pick it between
			// the delete and the model's update.
			s.volsMu.Lock()
			err = p.DeleteThin(bg, victim)
			if err == nil {
				delete(s.vols, victim)
			}
			s.volsMu.Unlock()
			if errors.Is(err, thinpool.ErrBusy) {
				err = nil // being read; another time
			}
		}
		s.pause.RUnlock()
		if err != nil {
			s.fail("snapshotter: %v", err)
			return
		}
	}
}

// snapshotReader reads whole snapshots and compares them with their
// models: a snapshot must never change.
func (s *stress) snapshotReader(stop chan struct{}) {
	rng := rand.New(rand.NewPCG(s.seed, 5))
	buf := make([]byte, stressVolBytes)
	for !s.failed.Load() {
		select {
		case <-stop:
			return
		default:
		}
		s.pause.RLock()
		s.volsMu.Lock()
		var pick uint64
		var m *volModel
		for id, vm := range s.vols {
			if id >= 100 && rng.IntN(3) == 0 {
				pick, m = id, vm
				break
			}
		}
		var th *thinpool.Thin
		var err error
		if m != nil {
			// Open while the set is locked, so a delete finds it busy.
			th, err = s.e.pool.OpenThin(pick, stressVolBytes)
		}
		s.volsMu.Unlock()
		if m != nil && err == nil {
			if err = th.ReadAt(bg, buf, 0); err == nil && !bytes.Equal(buf, m.data) {
				s.fail("snapshot %d differs from the model", pick)
			}
			th.Close()
		}
		s.pause.RUnlock()
		if err != nil {
			s.fail("snapshot reader: %v", err)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkPoint runs with every worker paused: commit, check the metadata
// with both checkers, and compare thin_dump's mappings with the model.
func (s *stress) checkPoint() {
	t := s.t
	t.Helper()
	r := s.e.commitAndCheck()
	out, err := exec.Command("thin_dump", s.e.metaPath).Output()
	if err != nil {
		t.Fatalf("thin_dump: %v", err)
	}
	counts := &mappingCounter{mapped: map[uint32]uint64{}, details: map[uint32]uint64{}}
	if err := thinxml.Parse(bytes.NewReader(out), counts); err != nil {
		t.Fatal(err)
	}
	s.volsMu.Lock()
	defer s.volsMu.Unlock()
	if len(counts.mapped) != len(s.vols) || r.Devices != len(s.vols) {
		t.Fatalf("thin_dump shows %d devices, thind check %d, the model %d", len(counts.mapped), r.Devices, len(s.vols))
	}
	for id, m := range s.vols {
		want := m.mappedCount()
		if counts.mapped[uint32(id)] != want || counts.details[uint32(id)] != want {
			t.Fatalf("device %d: thin_dump shows %d mappings (details %d), the model %d", id, counts.mapped[uint32(id)], counts.details[uint32(id)], want)
		}
	}
}

// mappingCounter counts thin_dump's mappings per device.
type mappingCounter struct {
	cur             uint32
	mapped, details map[uint32]uint64
}

func (c *mappingCounter) BeginSuperblock(metastream.Superblock) error { return nil }
func (c *mappingCounter) EndSuperblock() error                        { return nil }
func (c *mappingCounter) BeginDevice(d metastream.Device) error {
	c.cur = d.DevID
	c.mapped[d.DevID] = 0
	c.details[d.DevID] = d.MappedBlocks
	return nil
}
func (c *mappingCounter) EndDevice() error { return nil }
func (c *mappingCounter) Map(m metastream.Mapping) error {
	c.mapped[c.cur] += m.Len
	return nil
}
