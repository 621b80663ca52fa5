package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/tooltest"
)

// volState is what the crash test knows of a volume.
type volState struct {
	size   uint64
	origin string
}

// volOp is one CLI operation of the crash test's loop.
type volOp struct {
	kind   string // create, snapshot, resize, delete
	name   string
	origin string // snapshot
	size   uint64 // create, resize
}

func (o volOp) args() []string {
	switch o.kind {
	case "create":
		return []string{"volume", "create", o.name, "--size", fmt.Sprint(o.size)}
	case "snapshot":
		return []string{"volume", "snapshot", o.origin, o.name}
	case "resize":
		return []string{"volume", "resize", o.name, "--size", fmt.Sprint(o.size), "--allow-shrink"}
	}
	return []string{"volume", "delete", o.name}
}

// apply returns model with o done.
func (o volOp) apply(model map[string]volState) map[string]volState {
	m := maps.Clone(model)
	switch o.kind {
	case "create":
		m[o.name] = volState{size: o.size}
	case "snapshot":
		m[o.name] = volState{size: m[o.origin].size, origin: o.origin}
	case "resize":
		v := m[o.name]
		v.size = o.size
		m[o.name] = v
	case "delete":
		delete(m, o.name)
	}
	return m
}

// nextOp picks a random operation on the model.
func nextOp(rng *rand.Rand, model map[string]volState, n *int) volOp {
	names := slices.Sorted(maps.Keys(model))
	pick := func() string { return names[rng.IntN(len(names))] }
	// Sizes are multiples of 512 bytes, not always of the block size.
	size := func() uint64 { return uint64(1+rng.IntN(64)) << 20 / uint64(1+rng.IntN(4)) &^ 511 }
	switch r := rng.IntN(20); {
	case r < 7 || len(names) < 3:
		*n++
		return volOp{kind: "create", name: fmt.Sprintf("v%d", *n), size: size()}
	case r < 12:
		*n++
		return volOp{kind: "snapshot", name: fmt.Sprintf("s%d", *n), origin: pick()}
	case r < 17:
		return volOp{kind: "resize", name: pick(), size: size()}
	}
	return volOp{kind: "delete", name: pick()}
}

func describeModel(m map[string]volState) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s:%d:%s ", name, m[name].size, m[name].origin)
	}
	return b.String()
}

// listed turns a volume list into the model's form.
func listed(vols []volumeJSON) map[string]volState {
	m := map[string]volState{}
	for _, v := range vols {
		m[v.Name] = volState{size: v.Size, origin: v.Origin}
	}
	return m
}

// checkStoppedPool runs thind meta check and thin_check on a stopped
// pool's metadata and returns the thin device ids thind meta ls lists.
func checkStoppedPool(t *testing.T, d *daemon) []uint64 {
	t.Helper()
	meta := filepath.Join(d.dir, "metadata")
	if out, errOut, code := runThind(t, daemonEnv(), "meta", "check", meta); code != 0 {
		t.Fatalf("thind meta check: exit %d\n%s%s", code, out, errOut)
	}
	tooltest.Run(t, "thin_check", pkgThinTools, meta)
	var ls []struct {
		Dev uint64 `json:"dev"`
	}
	out := runThindOK(t, "meta", "ls", "--json", meta)
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		t.Fatalf("thind meta ls --json: %v\n%s", err, out)
	}
	var ids []uint64
	for _, l := range ls {
		ids = append(ids, l.Dev)
	}
	slices.Sort(ids)
	return ids
}

func TestKill9DuringVolumeOperationsLosesNothingAcknowledged(t *testing.T) {
	d := startDaemon(t)
	seed := randtest.Seed(t)
	rng := randtest.Stream(seed, 8)
	model := listed(d.volumes())
	n := 0
	const rounds = 12
	for round := range rounds {
		// The loop runs operations until one fails, which must be
		// because the daemon was killed.
		var killed atomic.Bool
		var done atomic.Int64
		type result struct {
			model    map[string]volState
			inFlight *volOp
			err      error
		}
		res := make(chan result, 1)
		opRng := randtest.Stream(seed, uint64(round))
		go func() {
			m := model
			for {
				op := nextOp(opRng, m, &n)
				_, errOut, code := d.cli(op.args()...)
				if code != 0 {
					r := result{model: m, inFlight: &op}
					if !killed.Load() {
						r.err = fmt.Errorf("thind %s: %s", strings.Join(op.args(), " "), errOut)
					}
					res <- r
					return
				}
				m = op.apply(m)
				done.Add(1)
			}
		}()
		// Kill after a few acknowledged operations, at a random moment
		// within the next one (a CLI call takes tens of milliseconds).
		after := int64(2 + rng.IntN(6))
		waitFor(t, "operations", time.Minute, func() error {
			select {
			case r := <-res:
				t.Fatalf("round %d: the operations stopped before the kill: %v", round, r.err)
			default:
			}
			if done.Load() < after {
				return fmt.Errorf("%d of %d operations done", done.Load(), after)
			}
			return nil
		})
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond) // the kill moment, not a wait for a condition
		killed.Store(true)
		d.kill()
		r := <-res
		if r.err != nil {
			t.Fatal(r.err)
		}

		// The metadata of the killed pool is consistent on its own.
		checkStoppedPool(t, d)

		// After the restart the volumes are the acknowledged ones, with
		// the operation in flight at the kill done or not.
		d.start()
		got := listed(d.volumes())
		with := r.inFlight.apply(r.model)
		switch {
		case maps.Equal(got, r.model):
			model = r.model
		case maps.Equal(got, with):
			model = with
		default:
			t.Fatalf("round %d: after kill -9 during %v the volumes are\n%s\nwant the acknowledged\n%s\nor with that operation\n%s",
				round, *r.inFlight, describeModel(got), describeModel(r.model), describeModel(with))
		}
		applied := maps.Equal(model, with) && !maps.Equal(r.model, with)
		t.Logf("round %d: killed after %d operations, during %v (applied: %v); %d volumes", round, done.Load(), *r.inFlight, applied, len(model))

		// The catalog and the thin metadata agree on the devices.
		var ids []uint64
		for _, v := range d.volumes() {
			ids = append(ids, v.DevID)
		}
		slices.Sort(ids)
		d.stop()
		if metaIDs := checkStoppedPool(t, d); !slices.Equal(metaIDs, ids) {
			t.Fatalf("round %d: thind meta ls lists devices %v, the catalog %v", round, metaIDs, ids)
		}
		d.start()
	}
	if strings.Contains(d.lastLines(1000), "dropped a volume") || strings.Contains(d.lastLines(1000), "adopted a thin device") {
		t.Errorf("reconcile dropped or adopted volumes:\n%s", d.lastLines(100))
	}
}

func TestFlushedDataSurvivesKill9(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "durable", "--size", "64M")
	uri := d.unixURI("durable")
	out := tooltest.Run(t, "qemu-io", pkgQemu, "-f", "raw",
		"-c", "write -P 0x5a 0 4M", "-c", "write -P 0x5b 10M 64k", "-c", "write -P 0x5c 20M 4k",
		"-c", "discard 1M 1M", "-c", "flush",
		"-c", "write -f -P 0x5d 30M 128k", // FUA: durable on its own
		uri)
	if strings.Contains(out, "failed") {
		t.Fatalf("qemu-io:\n%s", out)
	}
	// A snapshot is durable when the CLI returns; the origin then changes
	// and is flushed again.
	d.mustCLI("volume", "snapshot", "durable", "durable-snap")
	tooltest.Run(t, "qemu-io", pkgQemu, "-f", "raw", "-c", "write -P 0x5e 0 64k", "-c", "flush", uri)
	d.kill()
	checkStoppedPool(t, d)
	d.start()
	for _, tc := range []struct {
		vol  string
		cmds []string
	}{
		{"durable", []string{"read -P 0x5e 0 64k", "read -P 0x5a 64k 960k", "read -P 0 1M 1M", "read -P 0x5a 2M 2M",
			"read -P 0x5b 10M 64k", "read -P 0x5c 20M 4k", "read -P 0x5d 30M 128k", "read -P 0 40M 1M"}},
		{"durable-snap", []string{"read -P 0x5a 0 1M", "read -P 0 1M 1M", "read -P 0x5a 2M 2M", "read -P 0x5d 30M 128k"}},
	} {
		args := []string{"-f", "raw"}
		for _, c := range tc.cmds {
			args = append(args, "-c", c)
		}
		out := tooltest.Run(t, "qemu-io", pkgQemu, append(args, d.unixURI(tc.vol))...)
		if strings.Contains(out, "failed") || strings.Count(out, "read ") != len(tc.cmds) {
			t.Errorf("%s after kill -9:\n%s", tc.vol, out)
		}
	}
}

func TestSIGTERMWithAClientConnectedCommitsItsWrites(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "graceful", "--size", "16M")
	c := d.dial(t, "graceful")
	buf := make([]byte, 192<<10)
	for i := range buf {
		buf[i] = byte(i / 4096)
	}
	// Acknowledged, never flushed.
	if err := c.pwrite(buf, 1<<20, 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d.stop() // SIGTERM, exit status 0, with the client still connected
	t.Logf("thind stopped in %v with a client connected", time.Since(start).Round(time.Millisecond))
	if err := c.pread(make([]byte, 512), 0); err == nil {
		t.Error("the client is still served after thind stopped")
	}
	d.start()
	got := make([]byte, len(buf))
	if err := d.dial(t, "graceful").pread(got, 1<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, buf) {
		t.Error("a write acknowledged before SIGTERM is lost: the graceful stop did not commit it")
	}
}

// TestKill9DuringWritesKeepsWhatWasFlushed: eight writers stamp a volume
// while a ninth connection flushes in a loop; thind is killed at a random
// moment. Every write answered before the last answered flush was sent
// must be on disk after the restart; each slot holds that write or a
// later one, whole; and the killed pool's metadata passes the checkers.
func TestKill9DuringWritesKeepsWhatWasFlushed(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "crash", "--size", fmt.Sprint(snapSlots*slotSize))
	seed := randtest.Seed(t)
	rng := randtest.Stream(seed, 9)
	conns := make([]*nbdClient, 4)
	for i := range conns {
		conns[i] = d.dial(t, "crash")
	}
	fc := d.dial(t, "crash")
	sw := startStampWriters(t, conns, seed)

	fl := startFlusher(fc)
	sw.waitWrites(t, int64(2000+rng.IntN(3000)), true)
	time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond) // the kill moment, not a wait for a condition
	d.kill()
	sw.stopAll()
	lastFlush, nflush := fl.last()
	if nflush == 0 {
		t.Fatal("no flush was answered before the kill")
	}
	checkStoppedPool(t, d)
	d.start()

	img := make([]byte, snapSlots*slotSize)
	c := d.dial(t, "crash")
	for off := 0; off < len(img); off += 1 << 20 {
		if err := c.pread(img[off:off+1<<20], uint64(off)); err != nil {
			t.Fatal(err)
		}
	}
	bySlot := map[uint64][]stampedWrite{}
	durable, later := 0, 0
	for _, l := range sw.logs {
		for _, r := range l {
			bySlot[r.slot] = append(bySlot[r.slot], r)
			if !r.failed && r.done.Before(lastFlush) {
				durable++
			} else {
				later++
			}
		}
	}
	t.Logf("%d flushes; %d writes durable by the last one, %d after it or unanswered", nflush, durable, later)
	bad := 0
	for slot := uint64(0); slot < snapSlots; slot++ {
		_, seq, ok := readStamp(t, "after kill -9", slot, img[slot*slotSize:(slot+1)*slotSize])
		if !ok {
			seq = 0
		}
		allowed := map[uint64]bool{}
		var last uint64
		for _, r := range bySlot[slot] {
			if !r.failed && r.done.Before(lastFlush) {
				last = r.seq
			} else {
				allowed[r.seq] = true
			}
		}
		allowed[last] = true
		if !allowed[seq] && bad < 10 {
			bad++
			t.Errorf("slot %d holds write %d; the last flushed was %d (later ones allowed: %v)", slot, seq, last, allowed)
		}
	}
}

// flusher flushes one connection in a loop until the connection fails
// (the daemon's kill), keeping the send time of each flush answered.
type flusher struct {
	flushed chan time.Time
	done    chan struct{}
}

func startFlusher(c *nbdClient) *flusher {
	f := &flusher{flushed: make(chan time.Time, 1<<16), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			sent := time.Now()
			if err := c.flush(); err != nil {
				return
			}
			f.flushed <- sent
		}
	}()
	return f
}

// last waits for the loop to end and returns the send time of the last
// flush answered (zero if none was) and how many were: every write
// acknowledged before that time was durable at the kill.
func (f *flusher) last() (time.Time, int) {
	<-f.done
	var last time.Time
	n := 0
	for len(f.flushed) > 0 {
		last = <-f.flushed
		n++
	}
	return last, n
}
