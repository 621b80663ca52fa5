package test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/randtest"
)

// Snapshot while writing. Writers stamp 4 KiB slots of a volume; each
// slot belongs to one writer, which has at most one write in flight, so a
// slot's writes are ordered. Every write's send and reply times are
// recorded, and so are the times just before `thind volume snapshot`
// starts (t0) and just after it returns (t1). A write answered before t0
// must be in the snapshot; one sent after t1 must not; one in between
// may go either way, but a slot must read as exactly one whole stamp.

const (
	slotSize  = 4096
	snapSlots = 8192 // a 32 MiB volume
	writers   = 8
)

// stampedWrite is one write a writer made.
type stampedWrite struct {
	slot, seq  uint64
	sent, done time.Time
	failed     bool // no answer: the daemon was killed
	fua        bool // sent with NBD_CMD_FLAG_FUA: durable once answered
}

// stamp fills b with the content of write seq of writer w to slot.
func stamp(b []byte, slot, w, seq uint64) {
	binary.LittleEndian.PutUint64(b, slot)
	binary.LittleEndian.PutUint64(b[8:], w)
	binary.LittleEndian.PutUint64(b[16:], seq)
	x := slot*0x9e3779b97f4a7c15 ^ w<<32 ^ seq
	for i := 24; i < len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
}

// readStamp decodes a slot's content: its writer and sequence number, or
// ok false for zeros. A slot that is neither zeros nor one whole stamp
// of that slot fails the test.
func readStamp(t *testing.T, what string, slot uint64, b []byte) (w, seq uint64, ok bool) {
	t.Helper()
	if bytes.Equal(b, make([]byte, len(b))) {
		return 0, 0, false
	}
	w, seq = binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:])
	want := make([]byte, len(b))
	stamp(want, slot, w, seq)
	if !bytes.Equal(b, want) {
		t.Fatalf("%s: slot %d holds neither zeros nor a whole stamp of this slot (torn or misplaced write): %x...", what, slot, b[:32])
	}
	return w, seq, true
}

// checkOneInstant checks that a snapshot is one instant of the writers'
// histories. A writer's writes are sequential, so the snapshot holds a
// prefix of them: some cut c with every write up to c in and every later
// one out. Each slot bounds c: at least the write it shows, below the
// next write to it. And across writers: a write that is out must not
// have been answered before a write that is in was sent.
func checkOneInstant(t *testing.T, name string, img []byte, logs [][]stampedWrite, bySlot map[uint64][]stampedWrite) {
	t.Helper()
	lo := make([]uint64, writers) // the cut is at least lo
	hi := make([]uint64, writers) // and at most hi
	for w := range writers {
		hi[w] = uint64(len(logs[w]))
	}
	for slot := uint64(0); slot < snapSlots; slot++ {
		w := slot % writers
		_, seq, ok := readStamp(t, name, slot, img[slot*slotSize:(slot+1)*slotSize])
		if !ok {
			seq = 0
		}
		lo[w] = max(lo[w], seq)
		for _, r := range bySlot[slot] {
			if r.seq > seq {
				hi[w] = min(hi[w], r.seq-1)
				break
			}
		}
	}
	var lastIn, firstOut []stampedWrite
	for w := range writers {
		if lo[w] > hi[w] {
			t.Errorf("%s: writer %d's writes are not a prefix: write %d is in, but a slot misses write %d", name, w, lo[w], hi[w]+1)
		}
		if lo[w] > 0 {
			lastIn = append(lastIn, logs[w][lo[w]-1])
		}
		if hi[w] < uint64(len(logs[w])) {
			firstOut = append(firstOut, logs[w][hi[w]])
		}
	}
	reported := 0
	for _, out := range firstOut {
		for _, in := range lastIn {
			if out.done.Before(in.sent) && reported < 5 {
				reported++
				t.Errorf("%s: write %d to slot %d is out, write %d to slot %d is in, but the first was answered %v before the second was sent",
					name, out.seq, out.slot, in.seq, in.slot, in.sent.Sub(out.done))
			}
		}
	}
}

// stampWriters are the writers of the snapshot and crash tests: writer w
// owns the slots with slot % writers == w and has one write in flight at
// a time, so each slot's writes are ordered. logs[w] holds writer w's
// writes in order, seq i+1 at index i; a write that failed (the daemon
// was killed) is logged too, with failed set.
type stampWriters struct {
	logs      [][]stampedWrite
	completed atomic.Int64
	stop      chan struct{}
	errs      chan error
	wg        sync.WaitGroup
}

func startStampWriters(t *testing.T, conns []*nbdClient, seed uint64) *stampWriters {
	return startStampWritersEpoch(t, conns, seed, 0)
}

// startStampWritersEpoch is startStampWriters with writer w stamping as
// epoch*writers+w, so runs against one volume stamp distinct contents.
func startStampWritersEpoch(t *testing.T, conns []*nbdClient, seed, epoch uint64) *stampWriters {
	sw := &stampWriters{logs: make([][]stampedWrite, writers), stop: make(chan struct{}), errs: make(chan error, writers)}
	for w := range writers {
		sw.wg.Add(1)
		go func() {
			defer sw.wg.Done()
			c := conns[w%len(conns)]
			rng := randtest.Stream(seed, uint64(w))
			buf := make([]byte, slotSize)
			for seq := uint64(1); ; seq++ {
				select {
				case <-sw.stop:
					return
				default:
				}
				// Half the writes go to a hot tenth of the writer's
				// slots, so slots are rewritten often.
				n := uint64(snapSlots / writers)
				if rng.IntN(2) == 0 {
					n /= 10
				}
				slot := rng.Uint64N(n)*writers + uint64(w)
				stamp(buf, slot, epoch*writers+uint64(w), seq)
				rec := stampedWrite{slot: slot, seq: seq, sent: time.Now(), fua: rng.IntN(50) == 0}
				var err error
				if rec.fua {
					err = c.pwrite(buf, slot*slotSize, nbdFlagFUA)
				} else {
					err = c.pwrite(buf, slot*slotSize, 0)
				}
				rec.done = time.Now()
				if err != nil {
					rec.failed = true
					sw.logs[w] = append(sw.logs[w], rec)
					sw.errs <- fmt.Errorf("writer %d, write %d to slot %d: %w", w, seq, slot, err)
					return
				}
				sw.logs[w] = append(sw.logs[w], rec)
				sw.completed.Add(1)
			}
		}()
	}
	t.Cleanup(sw.stopAll)
	return sw
}

// stopAll stops the writers and waits for them.
func (sw *stampWriters) stopAll() {
	select {
	case <-sw.stop:
	default:
		close(sw.stop)
	}
	sw.wg.Wait()
}

// waitWrites waits for n more writes to complete; with failFast, a
// writer's error fails the test.
func (sw *stampWriters) waitWrites(t *testing.T, n int64, failFast bool) {
	t.Helper()
	target := sw.completed.Load() + n
	waitFor(t, "writes", 2*time.Minute, func() error {
		if failFast {
			select {
			case err := <-sw.errs:
				t.Fatal(err)
			default:
			}
		}
		if got := sw.completed.Load(); got < target {
			return fmt.Errorf("%d of %d writes done", got, target)
		}
		return nil
	})
}

// snapWindow is one snapshot and the time the CLI call took.
type snapWindow struct {
	name   string
	t0, t1 time.Time
}

func TestSnapshotWhileWritingHoldsExactlyTheDataAsOfTheSnapshot(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "origin", "--size", fmt.Sprint(snapSlots*slotSize))
	seed := randtest.Seed(t)

	conns := make([]*nbdClient, 4)
	for i := range conns {
		conns[i] = d.dial(t, "origin")
	}
	sw := startStampWriters(t, conns, seed)
	logs := sw.logs
	waitWrites := func(n int64) {
		t.Helper()
		sw.waitWrites(t, n, true)
	}
	var snaps []snapWindow
	for i := range 3 {
		waitWrites(1500)
		s := snapWindow{name: fmt.Sprintf("snap%d", i)}
		s.t0 = time.Now()
		d.mustCLI("volume", "snapshot", "origin", s.name)
		s.t1 = time.Now()
		snaps = append(snaps, s)
	}
	waitWrites(1500)
	sw.stopAll()
	select {
	case err := <-sw.errs:
		t.Fatal(err)
	default:
	}
	for _, c := range conns {
		c.close()
	}
	t.Logf("%d writes in all", sw.completed.Load())

	// Each slot's writes, in order.
	bySlot := make(map[uint64][]stampedWrite)
	for _, l := range logs {
		for _, r := range l {
			bySlot[r.slot] = append(bySlot[r.slot], r)
		}
	}

	readAll := func(vol string) []byte {
		t.Helper()
		c := d.dial(t, vol)
		img := make([]byte, snapSlots*slotSize)
		for off := 0; off < len(img); off += 1 << 20 {
			if err := c.pread(img[off:off+1<<20], uint64(off)); err != nil {
				t.Fatalf("reading %s: %v", vol, err)
			}
		}
		c.close()
		return img
	}
	images := map[string][]byte{}
	for _, s := range snaps {
		img := readAll(s.name)
		images[s.name] = img
		ambiguous, changedAfter := 0, 0
		for slot := uint64(0); slot < snapSlots; slot++ {
			w, seq, ok := readStamp(t, s.name, slot, img[slot*slotSize:(slot+1)*slotSize])
			// Allowed: the last write answered before t0 (or zeros if
			// none), and any write not answered before t0 and sent before
			// t1.
			allowed := map[uint64]bool{}
			var last uint64 // 0: zeros
			for _, r := range bySlot[slot] {
				switch {
				case r.done.Before(s.t0):
					last = r.seq
				case !r.sent.After(s.t1):
					allowed[r.seq] = true
				default:
					changedAfter++
				}
			}
			allowed[last] = true
			if len(allowed) > 1 {
				ambiguous++
			}
			got := uint64(0)
			if ok {
				if w != slot%writers {
					t.Fatalf("%s: slot %d holds a stamp of writer %d", s.name, slot, w)
				}
				got = seq
			}
			if !allowed[got] {
				t.Errorf("%s: slot %d holds write %d; want write %d (the last answered before the snapshot) or one in flight %v",
					s.name, slot, got, last, allowed)
			}
		}
		t.Logf("%s: %d slots had writes in flight across the snapshot; %d writes came after it", s.name, ambiguous, changedAfter)
		checkOneInstant(t, s.name, img, logs, bySlot)
		if changedAfter == 0 {
			t.Errorf("%s: no write after the snapshot: the test proves nothing", s.name)
		}
	}

	// The origin holds every slot's last write.
	origin := readAll("origin")
	for slot := uint64(0); slot < snapSlots; slot++ {
		_, seq, ok := readStamp(t, "origin", slot, origin[slot*slotSize:(slot+1)*slotSize])
		want := uint64(0)
		if ws := bySlot[slot]; len(ws) > 0 {
			want = ws[len(ws)-1].seq
		}
		if !ok {
			seq = 0
		}
		if seq != want {
			t.Errorf("origin: slot %d holds write %d, the last was %d", slot, seq, want)
		}
	}
	if bytes.Equal(origin, images[snaps[len(snaps)-1].name]) {
		t.Error("the origin did not change after the last snapshot")
	}

	// The snapshots are the same after a restart.
	d.stop()
	d.start()
	for _, s := range snaps {
		if !bytes.Equal(readAll(s.name), images[s.name]) {
			t.Errorf("%s reads differently after a restart", s.name)
		}
	}
	if !bytes.Equal(readAll("origin"), origin) {
		t.Error("the origin reads differently after a restart")
	}
}
