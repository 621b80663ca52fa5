package test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/randtest"
)

// killLoops is how many times TestKill9LoopKeepsEveryFlushAndFUA kills
// the daemon: 50 in CI; THIND_SOAK_KILLS=1000 (or more) for a soak.
func killLoops(t *testing.T) int {
	t.Helper()
	v := os.Getenv("THIND_SOAK_KILLS")
	if v == "" {
		return 50
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("THIND_SOAK_KILLS=%q: want a positive count", v)
	}
	return n
}

// slotState is what a slot held when it was last read back: the stamp's
// writer (epoch*writers+w) and sequence number, or zeros.
type slotState struct {
	w, seq uint64
	ok     bool
}

// TestKill9LoopKeepsEveryFlushAndFUA kills thind with SIGKILL again and
// again on one pool while eight writers stamp a volume, some writes with
// FUA, and another connection flushes in a loop. After each kill both
// checkers pass on the stopped pool, and on restart every slot holds
// what durability allows: at least the last write that was answered
// with FUA or answered before the last answered FLUSH was sent, never an
// older one, and an untouched slot still holds what it held before.
func TestKill9LoopKeepsEveryFlushAndFUA(t *testing.T) {
	loops := killLoops(t)
	d := startDaemon(t)
	d.mustCLI("volume", "create", "crash", "--size", fmt.Sprint(snapSlots*slotSize))
	seed := randtest.Seed(t)
	rng := randtest.Stream(seed, 10)
	prev := make([]slotState, snapSlots) // all zeros: a new volume
	durableTotal, fuaTotal := 0, 0
	for epoch := uint64(1); epoch <= uint64(loops); epoch++ {
		conns := make([]*nbdClient, 4)
		for i := range conns {
			conns[i] = d.dial(t, "crash")
		}
		fc := d.dial(t, "crash")
		sw := startStampWritersEpoch(t, conns, seed+epoch, epoch)
		fl := startFlusher(fc)
		sw.waitWrites(t, int64(200+rng.IntN(1500)), true)
		time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond) // the kill moment, not a wait for a condition
		d.kill()
		sw.stopAll()
		lastFlush, _ := fl.last() // zero: no flush answered, only FUA counts
		for _, c := range append(conns, fc) {
			c.close()
		}
		checkStoppedPool(t, d)
		d.start()

		img := readAll(t, d.dial(t, "crash"), snapSlots*slotSize)
		durable, fua := checkKilledSlots(t, epoch, img, sw.logs, lastFlush, prev)
		durableTotal += durable
		fuaTotal += fua
		if t.Failed() {
			t.Fatalf("kill %d of %d (seed %d) lost acknowledged data", epoch, loops, seed)
		}
	}
	t.Logf("%d kills survived; %d slots held a durable write when killed (%d durable by FUA alone), each read back", loops, durableTotal, fuaTotal)
}

// checkKilledSlots checks img, read after the kill of epoch, against the
// writers' logs and the slots' previous contents, and updates prev. It
// returns how many slots had a durable write this epoch, and how many of
// those were made durable by FUA alone.
func checkKilledSlots(t *testing.T, epoch uint64, img []byte, logs [][]stampedWrite, lastFlush time.Time, prev []slotState) (durable, byFUA int) {
	t.Helper()
	bySlot := map[uint64][]stampedWrite{}
	for _, l := range logs {
		for _, r := range l {
			bySlot[r.slot] = append(bySlot[r.slot], r)
		}
	}
	bad := 0
	for slot := uint64(0); slot < snapSlots; slot++ {
		w, seq, ok := readStamp(t, fmt.Sprintf("kill %d", epoch), slot, img[slot*slotSize:(slot+1)*slotSize])
		got := slotState{w, seq, ok}
		recs := bySlot[slot] // one writer's, in order
		var floor uint64     // the last durable write's seq, 0 if none
		fuaOnly := false
		for _, r := range recs {
			if r.failed {
				continue
			}
			flushedBefore := !lastFlush.IsZero() && r.done.Before(lastFlush)
			if r.fua || flushedBefore {
				floor, fuaOnly = r.seq, !flushedBefore
			}
		}
		sent := map[uint64]bool{}
		for _, r := range recs {
			sent[r.seq] = true
		}
		thisEpoch := ok && w/writers == epoch
		var why string
		switch {
		case thisEpoch && !sent[seq]:
			why = fmt.Sprintf("holds write %d of this run, which never sent it here", seq)
		case thisEpoch && seq < floor:
			why = fmt.Sprintf("holds write %d, but write %d was durable", seq, floor)
		case !thisEpoch && floor > 0:
			why = fmt.Sprintf("holds %+v from before, but write %d was durable", got, floor)
		case !thisEpoch && got != prev[slot]:
			why = fmt.Sprintf("holds %+v, but held %+v before and no write of this run reached it", got, prev[slot])
		}
		if why != "" {
			if bad < 10 {
				t.Errorf("kill %d: slot %d %s", epoch, slot, why)
			}
			bad++
		}
		if floor > 0 {
			durable++
			if fuaOnly {
				byFUA++
			}
		}
		prev[slot] = got
	}
	return durable, byFUA
}

// readAll reads the first n bytes of c's export and closes c.
func readAll(t *testing.T, c *nbdClient, n int) []byte {
	t.Helper()
	defer c.close()
	img := make([]byte, n)
	for off := 0; off < n; off += 1 << 20 {
		if err := c.pread(img[off:min(off+1<<20, n)], uint64(off)); err != nil {
			t.Fatal(err)
		}
	}
	return img
}
