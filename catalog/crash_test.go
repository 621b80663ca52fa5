package catalog

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/thinmeta"
)

// crashPool passes every call on to a *metadata.Pool, calling hook
// before and after each change, so that a test can take a crash clone
// between any two writes of an operation.
type crashPool struct {
	*thinmeta.Pool
	hook func(point string)
}

func (p *crashPool) at(point string) {
	if p.hook != nil {
		p.hook(point)
	}
}

func (p *crashPool) CreateThin(id uint64) error {
	p.at("before CreateThin")
	defer p.at("after CreateThin")
	return p.Pool.CreateThin(id)
}

func (p *crashPool) CreateSnap(id, origin uint64) error {
	p.at("before CreateSnap")
	defer p.at("after CreateSnap")
	return p.Pool.CreateSnap(id, origin)
}

func (p *crashPool) DeleteThin(id uint64) error {
	p.at("before DeleteThin")
	defer p.at("after DeleteThin")
	return p.Pool.DeleteThin(id)
}

func (p *crashPool) RemoveRange(id, begin, end uint64) (uint64, error) {
	p.at("before RemoveRange")
	defer p.at("after RemoveRange")
	return p.Pool.RemoveRange(id, begin, end)
}

func (p *crashPool) SetTransactionID(cur, next uint64) error {
	p.at("before SetTransactionID")
	defer p.at("after SetTransactionID")
	return p.Pool.SetTransactionID(cur, next)
}

func (p *crashPool) Commit() error {
	p.at("before Commit")
	defer p.at("after Commit")
	return p.Pool.Commit()
}

// Crash points around an operation: before it starts, and after it
// returned (step 3 done).
const (
	pointBeforeOp = "before op"
	pointAfterOp  = "after op"
)

// committedAt says whether a crash at point leaves the operation done:
// once the metadata commit has returned, and only then.
func committedAt(point string) bool {
	return point == "after Commit" || point == pointAfterOp
}

// world is everything both stores say, for comparing the outcome of a
// crash with the states before and after an operation.
type world struct {
	TxID    uint64
	Volumes []Volume
	Devices map[uint64]uint64 // device id -> mapped blocks
}

func (e *testEnv) world() world {
	e.t.Helper()
	w := world{TxID: e.pool.TransactionID(), Volumes: e.list(), Devices: map[uint64]uint64{}}
	for _, d := range e.pool.Devices() {
		w.Devices[d.ID] = d.MappedBlocks
	}
	return w
}

func (w world) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "txid %d, devices %v, volumes", w.TxID, w.Devices)
	for _, v := range w.Volumes {
		fmt.Fprintf(&b, " %s(dev %d, %d bytes)", v.Name, v.DevID, v.Size)
	}
	return b.String()
}

// crashOp is one operation of the crash matrix, run on a catalog set up
// with crashSetup.
type crashOp struct {
	name string
	run  func(e *testEnv, p Pool) error
}

// crashSetup makes a catalog with an origin that has data and a
// snapshot, and an unrelated volume.
func crashSetup(e *testEnv) {
	base := e.create("base", 16*testBlockBytes)
	e.mapBlocks(base.DevID, 0, 16)
	if _, err := e.cat.SnapshotVolume(bg, e.pool, "base", Spec{Name: "base-snap"}); err != nil {
		e.t.Fatal(err)
	}
	e.create("other", 1<<20)
}

var crashOps = []crashOp{
	{"create", func(e *testEnv, p Pool) error {
		_, err := e.cat.CreateVolume(bg, p, Spec{Name: "new", Size: 1 << 20, Labels: map[string]string{"k": "v"}})
		return err
	}},
	{"snapshot", func(e *testEnv, p Pool) error {
		_, err := e.cat.SnapshotVolume(bg, p, "base", Spec{Name: "snap-2"})
		return err
	}},
	{"delete an origin", func(e *testEnv, p Pool) error { return e.cat.DeleteVolume(bg, p, "base") }},
	{"delete a snapshot", func(e *testEnv, p Pool) error { return e.cat.DeleteVolume(bg, p, "base-snap") }},
	{"shrink", func(e *testEnv, p Pool) error {
		_, err := e.cat.ResizeVolume(bg, p, "base", 5*testBlockBytes+testBlockBytes/2)
		return err
	}},
	{"grow", func(e *testEnv, p Pool) error {
		_, err := e.cat.ResizeVolume(bg, p, "base", 32*testBlockBytes)
		return err
	}},
}

// crashPoints runs op once and returns the points it passes, in order.
func crashPoints(t *testing.T, op crashOp) []string {
	e := newEnv(t)
	crashSetup(e)
	points := []string{pointBeforeOp}
	p := &crashPool{Pool: e.pool, hook: func(pt string) { points = append(points, pt) }}
	if err := op.run(e, p); err != nil {
		t.Fatal(err)
	}
	return append(points, pointAfterOp)
}

// clones are the crash variants taken at each point: exactly the synced
// data, a random share of the unsynced data, and everything.
var clones = []struct {
	name        string
	unsyncedPct int
	keep        float64
}{
	{"synced only", 0, 0},
	{"some unsynced", 50, 0.5},
	{"all written", 100, 1},
}

// TestCrashAfterEveryStep stops every operation at every point between
// two writes, restarts both stores from what a power cut would leave,
// reconciles, and requires the catalog and the metadata to agree exactly
// and the operation to be fully done (crash after the metadata commit)
// or fully undone (before it).
func TestCrashAfterEveryStep(t *testing.T) {
	rng := randtest.New(t)
	for _, op := range crashOps {
		t.Run(op.name, func(t *testing.T) {
			points := crashPoints(t, op)
			for i, point := range points {
				t.Run(fmt.Sprintf("%d %s", i, point), func(t *testing.T) {
					e := newEnv(t)
					crashSetup(e)
					before := e.world()
					var snaps []snapshot
					take := func() {
						for _, c := range clones {
							snaps = append(snaps, e.crashClone(rng, c.unsyncedPct, c.keep))
						}
					}
					n := 0
					p := &crashPool{Pool: e.pool, hook: func(string) {
						if n++; n == i {
							take()
						}
					}}
					if i == 0 {
						take()
					}
					if err := op.run(e, p); err != nil {
						t.Fatal(err)
					}
					if i == len(points)-1 {
						take()
					}
					after := e.world()
					if reflect.DeepEqual(before, after) {
						t.Fatalf("%s changed nothing", op.name)
					}
					want := before
					if committedAt(point) {
						want = after
					}
					for j, s := range snaps {
						t.Run(clones[j].name, func(t *testing.T) {
							r := e.restart(s)
							rep := r.reconcile()
							if rep.Repaired() {
								t.Errorf("reconcile repaired more than its own intent: %+v", rep)
							}
							if pending := rep.Pending != nil; pending != (point != pointBeforeOp && point != pointAfterOp) {
								t.Errorf("reconcile found intent %+v at %q", rep.Pending, point)
							}
							if got := r.world(); !reflect.DeepEqual(got, want) {
								t.Fatalf("after a crash at %q and reconcile:\n got %v\nwant %v", point, got, want)
							}
							// And the catalog goes on working.
							r.create("later", 1<<20)
							r.check()
						})
					}
				})
			}
		})
	}
}

// TestCrashDuringCommit takes crash clones before every write and sync
// the operation's metadata commit makes, keeping none, some or all of
// the unsynced writes: the superblock goes last, so each clone holds the
// operation committed or not, and the catalog must follow it exactly.
func TestCrashDuringCommit(t *testing.T) {
	rng := randtest.New(t)
	for _, op := range crashOps {
		t.Run(op.name, func(t *testing.T) {
			e := newEnv(t)
			crashSetup(e)
			before := e.world()
			var snaps []snapshot
			p := &crashPool{Pool: e.pool, hook: func(pt string) {
				switch pt {
				case "before Commit":
					e.io.hook = func() {
						for _, c := range clones {
							snaps = append(snaps, e.crashClone(rng, c.unsyncedPct, c.keep))
						}
					}
				case "after Commit":
					e.io.hook = nil
				}
			}}
			if err := op.run(e, p); err != nil {
				t.Fatal(err)
			}
			after := e.world()
			outcomes := map[string]int{}
			for i, s := range snaps {
				r := e.restart(s)
				rep := r.reconcile()
				got := r.world()
				switch {
				case rep.Repaired() || rep.Pending == nil:
					t.Fatalf("clone %d: reconcile %+v, want only the pending intent resolved", i, rep)
				case reflect.DeepEqual(got, before) && !rep.Completed:
					outcomes["undone"]++
				case reflect.DeepEqual(got, after) && rep.Completed:
					outcomes["done"]++
				default:
					t.Fatalf("clone %d: completed %v, but\n got %v\nwant %v\n  or %v", i, rep.Completed, got, before, after)
				}
			}
			t.Logf("%d clones: %v", len(snaps), outcomes)
			if outcomes["undone"] == 0 || outcomes["done"] == 0 {
				t.Fatalf("outcomes %v: want both", outcomes)
			}
		})
	}
}

// TestCrashDuringCatalogWrites takes crash clones before every pebble
// file operation of step 1 (writing the intent) and step 3 (applying
// it), keeping none, some or all of the unsynced data: a crash in step 1
// leaves the operation undone, one in step 3 done.
func TestCrashDuringCatalogWrites(t *testing.T) {
	rng := randtest.New(t)
	for _, op := range crashOps {
		t.Run(op.name, func(t *testing.T) {
			e := newEnv(t)
			crashSetup(e)
			before := e.world()
			var mu sync.Mutex
			snaps := map[string][]snapshot{}
			arm := func(step string) {
				hook := func(errorfs.Op) {
					mu.Lock()
					defer mu.Unlock()
					for _, c := range clones {
						snaps[step] = append(snaps[step], e.crashClone(rng, c.unsyncedPct, c.keep))
					}
				}
				e.fsHook.Store(&hook)
			}
			arm("step 1")
			first := true
			p := &crashPool{Pool: e.pool, hook: func(pt string) {
				switch {
				case first:
					first = false
					e.fsHook.Store(nil)
				case pt == "after Commit":
					arm("step 3")
				}
			}}
			if err := op.run(e, p); err != nil {
				t.Fatal(err)
			}
			e.fsHook.Store(nil)
			after := e.world()
			for step, want := range map[string]world{"step 1": before, "step 3": after} {
				if len(snaps[step]) == 0 {
					t.Fatalf("%s made no file system operations", step)
				}
				for i, s := range snaps[step] {
					r := e.restart(s)
					rep := r.reconcile()
					if got := r.world(); rep.Repaired() || !reflect.DeepEqual(got, want) {
						t.Fatalf("%s, clone %d: reconcile %+v\n got %v\nwant %v", step, i, rep, got, want)
					}
				}
				t.Logf("%s: %d clones", step, len(snaps[step]))
			}
		})
	}
}

// TestPowerCutDuringCommit cuts the metadata device's power after every
// number of writes of the operation's metadata commit. The operation
// fails (or, past the last write, succeeds); after a restart from what
// the devices hold, the operation is all or nothing and the stores agree.
func TestPowerCutDuringCommit(t *testing.T) {
	rng := randtest.New(t)
	for _, op := range crashOps {
		t.Run(op.name, func(t *testing.T) {
			outcomes := map[string]int{}
			for k := 0; ; k++ {
				e := newEnv(t)
				crashSetup(e)
				before := e.world()
				p := &crashPool{Pool: e.pool, hook: func(pt string) {
					if pt == "before Commit" {
						e.dev.CutPowerAfter(k)
					}
				}}
				opErr := op.run(e, p)
				if opErr != nil && !errors.Is(opErr, ErrNeedsReconcile) {
					t.Fatalf("cut after %d writes: %v, want ErrNeedsReconcile", k, opErr)
				}
				var after world
				if opErr == nil {
					after = e.world()
				}
				for _, c := range clones {
					r := e.restart(e.crashClone(rng, c.unsyncedPct, c.keep))
					rep := r.reconcile()
					got := r.world()
					switch {
					case opErr == nil && !reflect.DeepEqual(got, after):
						t.Fatalf("cut after %d writes (%s): op succeeded, but after reconcile\n got %v\nwant %v", k, c.name, got, after)
					case rep.Repaired():
						t.Fatalf("cut after %d writes (%s): reconcile repaired %+v", k, c.name, rep)
					case got.TxID == before.TxID && !reflect.DeepEqual(got, before):
						t.Fatalf("cut after %d writes (%s): not committed, but\n got %v\nwant %v", k, c.name, got, before)
					case got.TxID == before.TxID:
						outcomes["undone"]++
					case got.TxID == before.TxID+1 && rep.Pending != nil && !rep.Completed:
						t.Fatalf("cut after %d writes (%s): committed, but the intent was rolled back", k, c.name)
					case got.TxID == before.TxID+1:
						outcomes["done"]++
					default:
						t.Fatalf("cut after %d writes (%s): transaction id %d", k, c.name, got.TxID)
					}
				}
				if opErr == nil {
					t.Logf("commit took %d writes; outcomes %v", k, outcomes)
					if outcomes["undone"] == 0 || outcomes["done"] == 0 {
						t.Fatalf("outcomes %v: want both", outcomes)
					}
					return
				}
			}
		})
	}
}

// TestFailedChangeRollsBackAtOnce: when the metadata refuses the change
// itself, nothing was committed, so the operation is undone without a
// restart and the catalog stays usable.
func TestFailedChangeRollsBackAtOnce(t *testing.T) {
	e := newEnv(t)
	crashSetup(e)
	before := e.world()
	boom := errors.New("injected")
	p := &failPool{Pool: e.pool, failCreate: boom}
	if _, err := e.cat.CreateVolume(bg, p, Spec{Name: "new", Size: 512}); !errors.Is(err, boom) {
		t.Fatalf("create: %v, want the injected error", err)
	}
	if got := e.world(); !reflect.DeepEqual(got, before) {
		t.Fatalf("after a failed change\n got %v\nwant %v", got, before)
	}
	e.check()
	e.create("new", 512)
}

// TestFailedCommitWaitsForReconcile: a failed commit may or may not be
// on disk, so the catalog refuses changes until Reconcile decides, and
// Reconcile goes by what the metadata then says.
func TestFailedCommitWaitsForReconcile(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("commit durable %v", durable), func(t *testing.T) {
			e := newEnv(t)
			crashSetup(e)
			before := e.world()
			p := &failPool{Pool: e.pool, failCommit: errors.New("injected"), commitAnyway: durable}
			if _, err := e.cat.CreateVolume(bg, p, Spec{Name: "new", Size: 512}); !errors.Is(err, ErrNeedsReconcile) {
				t.Fatalf("create: %v, want ErrNeedsReconcile", err)
			}
			if _, err := e.cat.CreateVolume(bg, e.pool, Spec{Name: "x", Size: 512}); !errors.Is(err, ErrNeedsReconcile) {
				t.Fatalf("a change before reconcile: %v", err)
			}
			rep := e.reconcile()
			if rep.Pending == nil || rep.Completed != durable || rep.Repaired() {
				t.Fatalf("reconcile: %+v", rep)
			}
			_, err := e.cat.Get(bg, "new")
			if durable != (err == nil) {
				t.Fatalf("Get(new) = %v with the commit durable %v", err, durable)
			}
			if !durable && !reflect.DeepEqual(e.world(), before) {
				t.Fatalf("rolled back, but\n got %v\nwant %v", e.world(), before)
			}
			e.create("later", 512)
		})
	}
}

// failPool injects errors into a *metadata.Pool.
type failPool struct {
	*thinmeta.Pool
	failCreate   error
	failCommit   error
	commitAnyway bool // commit for real, then return failCommit
}

func (p *failPool) CreateThin(id uint64) error {
	if p.failCreate != nil {
		return p.failCreate
	}
	return p.Pool.CreateThin(id)
}

func (p *failPool) Commit() error {
	if p.failCommit == nil {
		return p.Pool.Commit()
	}
	if p.commitAnyway {
		if err := p.Pool.Commit(); err != nil {
			return err
		}
	}
	return p.failCommit
}
