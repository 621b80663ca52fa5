package test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/randtest"
)

// The load test's shape: loadConns connections spread over loadVolumes
// volumes; each connection owns a contiguous range of its volume's 4 KiB
// slots, so a model per connection predicts every read exactly.
const (
	loadVolumes    = 8
	loadConns      = 64
	loadSlotsOwned = 256 // 1 MiB per connection, 8 MiB per volume
	loadMaxRun     = 32  // slots per request, up to 128 KiB: crosses 64 KiB blocks
)

// loadSlot is the model of one slot: a stamp (writer, seq), zeros, or,
// after a trim, either zeros or what it held before.
type loadSlot struct {
	seq     uint64 // 0: zeros
	trimmed bool   // zeros or prevSeq may show
	prevSeq uint64
}

type loadStats struct {
	mu    sync.Mutex
	lat   map[string][]time.Duration
	bytes int64
}

func (s *loadStats) add(op string, d time.Duration, n int) {
	s.mu.Lock()
	s.lat[op] = append(s.lat[op], d)
	s.bytes += int64(n)
	s.mu.Unlock()
}

// loadDuration is how long a soak runs (THIND_SOAK_LOAD=10m); without it
// every connection makes loadOps requests.
func loadDuration(t *testing.T) time.Duration {
	v := os.Getenv("THIND_SOAK_LOAD")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("THIND_SOAK_LOAD=%q: want a duration such as 10m", v)
	}
	return d
}

const loadOps = 150

// TestLoadManyConnectionsAgainstAModel runs 64 connections over 8
// volumes with mixed reads, writes, trims, write-zeroes and flushes,
// while snapshots are taken and deleted under them, and checks every read
// against a model. It prints throughput and latency percentiles. Then
// the whole of every volume reads back as the model says, and the stopped
// pool passes both checkers.
func TestLoadManyConnectionsAgainstAModel(t *testing.T) {
	d := startDaemon(t)
	volSize := uint64(loadConns/loadVolumes) * loadSlotsOwned * slotSize
	for v := range loadVolumes {
		d.mustCLI("volume", "create", fmt.Sprintf("load%d", v), "--size", fmt.Sprint(volSize))
	}
	seed := randtest.Seed(t)
	soak := loadDuration(t)
	models := make([][]loadSlot, loadConns)
	st := &loadStats{lat: map[string][]time.Duration{}}
	errs := make(chan error, loadConns+1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for ci := range loadConns {
		c := d.dial(t, fmt.Sprintf("load%d", ci%loadVolumes))
		models[ci] = make([]loadSlot, loadSlotsOwned)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runLoadConn(c, ci, models[ci], randtest.Stream(seed, uint64(ci)), soak, start, st); err != nil {
				errs <- fmt.Errorf("connection %d: %w", ci, err)
			}
		}()
	}
	// Snapshots come and go under the load: writes to shared blocks break
	// sharing, deletes free blocks the volumes no longer map.
	snapDone := make(chan struct{})
	snaps := 0
	go func() {
		defer close(snapDone)
		rng := randtest.Stream(seed, 99)
		var live []string
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("load%d-s%d", rng.IntN(loadVolumes), i)
			if out, errOut, code := d.cli("volume", "snapshot", name[:5], name); code != 0 {
				errs <- fmt.Errorf("snapshot %s: exit %d\n%s%s", name, code, out, errOut)
				return
			}
			snaps++
			live = append(live, name)
			if len(live) > 3 {
				if out, errOut, code := d.cli("volume", "delete", live[0]); code != 0 {
					errs <- fmt.Errorf("delete %s: exit %d\n%s%s", live[0], code, out, errOut)
					return
				}
				live = live[1:]
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	<-snapDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	reportLoad(t, st, elapsed, snaps)

	for ci := range loadConns {
		c := d.dial(t, fmt.Sprintf("load%d", ci%loadVolumes))
		buf := make([]byte, loadSlotsOwned*slotSize)
		if err := c.pread(buf, loadBase(ci)); err != nil {
			t.Fatal(err)
		}
		if err := checkLoadRead(ci, models[ci], 0, buf); err != nil {
			t.Errorf("final read: %v", err)
		}
		c.close()
	}
	d.stop()
	checkStoppedPool(t, d)
}

// loadBase is the byte offset of connection ci's range in its volume.
func loadBase(ci int) uint64 {
	return uint64(ci/loadVolumes) * loadSlotsOwned * slotSize
}

func runLoadConn(c *nbdClient, ci int, model []loadSlot, rng *rand.Rand, soak time.Duration, start time.Time, st *loadStats) error {
	base := loadBase(ci)
	buf := make([]byte, loadMaxRun*slotSize)
	var seq uint64
	for i := 0; ; i++ {
		if soak > 0 && time.Since(start) > soak || soak == 0 && i >= loadOps {
			return nil
		}
		first := rng.IntN(loadSlotsOwned)
		n := 1 + rng.IntN(min(loadMaxRun, loadSlotsOwned-first))
		off, length := base+uint64(first)*slotSize, n*slotSize
		p := buf[:length]
		var op string
		var err error
		t0 := time.Now()
		switch r := rng.IntN(100); {
		case r < 40:
			op = "write"
			seq++
			for k := range n {
				stamp(p[k*slotSize:(k+1)*slotSize], loadSlotID(base, first+k), uint64(ci), seq)
			}
			flags := uint16(0)
			if rng.IntN(10) == 0 {
				flags = nbdFlagFUA
			}
			if err = c.pwrite(p, off, flags); err == nil {
				for k := range n {
					model[first+k] = loadSlot{seq: seq}
				}
			}
		case r < 75:
			op = "read"
			if err = c.pread(p, off); err == nil {
				err = checkLoadRead(ci, model, first, p)
			}
		case r < 85:
			op = "trim"
			if err = c.trim(off, uint32(length)); err == nil {
				for k := range n {
					m := &model[first+k]
					if m.seq != 0 || m.trimmed {
						prev := m.seq
						if m.trimmed && prev == 0 {
							prev = m.prevSeq
						}
						*m = loadSlot{trimmed: true, prevSeq: prev}
					}
				}
			}
		case r < 95:
			op = "write-zeroes"
			if err = c.writeZeroes(off, uint32(length)); err == nil {
				for k := range n {
					model[first+k] = loadSlot{}
				}
			}
		default:
			op, length = "flush", 0
			err = c.flush()
		}
		if err != nil {
			return fmt.Errorf("%s of %d bytes at %d: %w", op, length, off, err)
		}
		bytesMoved := length
		if op == "trim" || op == "write-zeroes" {
			bytesMoved = 0
		}
		st.add(op, time.Since(t0), bytesMoved)
	}
}

// loadSlotID names a slot in its volume, for the stamp.
func loadSlotID(base uint64, k int) uint64 { return base/slotSize + uint64(k) }

// checkLoadRead checks p, read from connection ci's slots first..., against
// the model.
func checkLoadRead(ci int, model []loadSlot, first int, p []byte) error {
	base := loadBase(ci)
	zero := make([]byte, slotSize)
	want := make([]byte, slotSize)
	for k := 0; k < len(p)/slotSize; k++ {
		got := p[k*slotSize : (k+1)*slotSize]
		m := model[first+k]
		id := loadSlotID(base, first+k)
		matches := func(seq uint64) bool {
			if seq == 0 {
				return bytes.Equal(got, zero)
			}
			stamp(want, id, uint64(ci), seq)
			return bytes.Equal(got, want)
		}
		if matches(m.seq) || m.trimmed && matches(m.prevSeq) {
			continue
		}
		return fmt.Errorf("slot %d of connection %d (volume load%d) holds %x..., want write %d (trimmed %v, before it %d)",
			first+k, ci, ci%loadVolumes, got[:24], m.seq, m.trimmed, m.prevSeq)
	}
	return nil
}

func reportLoad(t *testing.T, st *loadStats, elapsed time.Duration, snaps int) {
	var all []time.Duration
	ops := slices.Sorted(func(yield func(string) bool) {
		for op := range st.lat {
			if !yield(op) {
				return
			}
		}
	})
	for _, op := range ops {
		l := st.lat[op]
		all = append(all, l...)
		slices.Sort(l)
		t.Logf("%-12s %6d requests  p50 %8v  p99 %8v", op, len(l), pct(l, 50), pct(l, 99))
	}
	slices.Sort(all)
	t.Logf("load: %d connections over %d volumes, %d requests in %v (%.0f/s), %.1f MiB read+written (%.1f MiB/s), p50 %v, p99 %v, %d snapshots taken; no errors",
		loadConns, loadVolumes, len(all), elapsed.Round(time.Millisecond), float64(len(all))/elapsed.Seconds(),
		float64(st.bytes)/(1<<20), float64(st.bytes)/(1<<20)/elapsed.Seconds(), pct(all, 50), pct(all, 99), snaps)
}

// pct is the p-th percentile of sorted durations.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100].Round(time.Microsecond)
}
