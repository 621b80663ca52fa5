package catalog

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
)

// model is what the catalog should hold: the volumes by name, and every
// device id ever handed out (none may come back before the allocator
// wraps, which this test never reaches).
type model struct {
	vols    map[string]Volume
	usedIDs map[uint64]bool
}

func (m model) clone() model {
	return model{vols: maps.Clone(m.vols), usedIDs: maps.Clone(m.usedIDs)}
}

func (m model) list() []Volume {
	var out []Volume // nil when empty, as List returns
	for _, n := range slices.Sorted(maps.Keys(m.vols)) {
		out = append(out, m.vols[n])
	}
	return out
}

// randomOp is one step of the random workload: it runs an operation
// against the catalog through p and updates m if it succeeded.
type randomOp func(t *testing.T, rng *rand.Rand, e *testEnv, p Pool, m *model) (string, error)

var randomNames = []string{"a", "b", "c", "d", "e", "f", "g", "h"}

func pickVolume(rng *rand.Rand, m *model) (Volume, bool) {
	if len(m.vols) == 0 {
		return Volume{}, false
	}
	names := slices.Sorted(maps.Keys(m.vols))
	return m.vols[names[rng.IntN(len(names))]], true
}

func freeName(rng *rand.Rand, m *model) (string, bool) {
	var free []string
	for _, n := range randomNames {
		if _, ok := m.vols[n]; !ok {
			free = append(free, n)
		}
	}
	if len(free) == 0 {
		return "", false
	}
	return free[rng.IntN(len(free))], true
}

// added checks a new volume the catalog returned and records it.
func (m *model) added(t *testing.T, v Volume) {
	t.Helper()
	if m.usedIDs[v.DevID] || v.DevID == 0 {
		t.Fatalf("volume %q got device id %d, which was handed out before", v.Name, v.DevID)
	}
	m.usedIDs[v.DevID] = true
	m.vols[v.Name] = v
}

var randomOps = []randomOp{
	func(t *testing.T, rng *rand.Rand, e *testEnv, p Pool, m *model) (string, error) {
		name, ok := freeName(rng, m)
		if !ok {
			return "create (no free name)", nil
		}
		spec := Spec{Name: name, Size: uint64(1+rng.IntN(64)) * testBlockBytes / 2}
		if rng.IntN(2) == 0 {
			spec.Labels = map[string]string{"tier": []string{"gold", "silver"}[rng.IntN(2)]}
		}
		v, err := e.cat.CreateVolume(bg, p, spec)
		if err == nil {
			if v.Name != name || v.Size != spec.Size || v.Origin != nil || !reflect.DeepEqual(v.Labels, spec.Labels) {
				t.Fatalf("created %+v from %+v", v, spec)
			}
			m.added(t, v)
		}
		return fmt.Sprintf("create %s", name), err
	},
	func(t *testing.T, rng *rand.Rand, e *testEnv, p Pool, m *model) (string, error) {
		o, ok := pickVolume(rng, m)
		name, free := freeName(rng, m)
		if !ok || !free {
			return "snapshot (nothing to do)", nil
		}
		v, err := e.cat.SnapshotVolume(bg, p, o.Name, Spec{Name: name})
		if err == nil {
			if v.Size != o.Size || v.Origin == nil || *v.Origin != (Origin{Name: o.Name, DevID: o.DevID}) {
				t.Fatalf("snapshot %+v of %+v", v, o)
			}
			m.added(t, v)
		}
		return fmt.Sprintf("snapshot %s as %s", o.Name, name), err
	},
	func(t *testing.T, rng *rand.Rand, e *testEnv, p Pool, m *model) (string, error) {
		v, ok := pickVolume(rng, m)
		if !ok {
			return "delete (nothing to do)", nil
		}
		err := e.cat.DeleteVolume(bg, p, v.Name)
		if err == nil {
			delete(m.vols, v.Name)
		}
		return fmt.Sprintf("delete %s", v.Name), err
	},
	func(t *testing.T, rng *rand.Rand, e *testEnv, p Pool, m *model) (string, error) {
		v, ok := pickVolume(rng, m)
		if !ok {
			return "resize (nothing to do)", nil
		}
		size := uint64(1+rng.IntN(64)) * testBlockBytes / 2
		got, err := e.cat.ResizeVolume(bg, p, v.Name, size)
		if err == nil {
			v.Size = size
			if !reflect.DeepEqual(got, v) {
				t.Fatalf("resized to %+v, want %+v", got, v)
			}
			m.vols[v.Name] = v
		}
		return fmt.Sprintf("resize %s to %d", v.Name, size), err
	},
	func(t *testing.T, rng *rand.Rand, e *testEnv, p Pool, m *model) (string, error) {
		v, ok := pickVolume(rng, m)
		if !ok {
			return "write (nothing to do)", nil
		}
		// The engine writing: map blocks below the volume's end. Not a
		// catalog change; it gives shrinks something to unmap.
		blocks := (v.Size + testBlockBytes - 1) / testBlockBytes
		begin := uint64(rng.IntN(int(blocks)))
		end := min(blocks, begin+uint64(1+rng.IntN(4)))
		for vb := begin; vb < end; vb++ {
			if _, err := e.pool.Find(v.DevID, vb); err == nil {
				continue
			}
			b, err := e.pool.AllocDataBlock()
			if err != nil {
				t.Fatal(err)
			}
			if err := e.pool.Insert(v.DevID, vb, b); err != nil {
				t.Fatal(err)
			}
		}
		return fmt.Sprintf("write %s blocks [%d,%d)", v.Name, begin, end), e.pool.Commit()
	},
	func(t *testing.T, rng *rand.Rand, e *testEnv, p Pool, m *model) (string, error) {
		v, ok := pickVolume(rng, m)
		if !ok {
			return "update (nothing to do)", nil
		}
		desc := fmt.Sprintf("note %d", rng.IntN(100))
		got, err := e.cat.UpdateVolume(bg, v.Name, Update{Description: &desc})
		if err == nil {
			v.Description = desc
			if !reflect.DeepEqual(got, v) {
				t.Fatalf("updated to %+v, want %+v", got, v)
			}
			m.vols[v.Name] = v
		}
		return fmt.Sprintf("describe %s", v.Name), err
	},
}

// TestRandomOpsWithCrashes runs a random workload, and at random points
// takes a crash clone: between two of an operation's writes, or between
// two writes of its metadata commit. After each such crash it restarts
// from the clone, reconciles, and checks that the stores agree, that the
// operation is all or nothing, and that the catalog matches the model.
func TestRandomOpsWithCrashes(t *testing.T) {
	rng := randtest.New(t)
	steps := 400
	if testing.Short() {
		steps = 100
	}
	e := newEnv(t)
	m := model{vols: map[string]Volume{}, usedIDs: map[uint64]bool{}}
	crashes := map[string]int{}
	for step := range steps {
		before, mBefore := e.world(), m.clone()
		var snap *snapshot
		var point string
		take := func(at string) {
			if snap == nil {
				c := clones[rng.IntN(len(clones))]
				s := e.crashClone(rng, c.unsyncedPct, c.keep)
				snap, point = &s, at
			}
		}
		p := &crashPool{Pool: e.pool}
		crashAfter := false
		switch rng.IntN(5) {
		case 0: // crash between two of the operation's writes
			target := 1 + rng.IntN(8)
			n := 0
			p.hook = func(pt string) {
				if n++; n == target {
					take(pt)
				}
			}
		case 1: // crash between two writes of the metadata commit
			target := rng.IntN(6)
			p.hook = func(pt string) {
				switch pt {
				case "before Commit":
					n := 0
					e.io.hook = func() {
						if n++; n > target {
							take("during Commit")
						}
					}
				case "after Commit":
					e.io.hook = nil
				}
			}
		case 2: // crash once the operation has returned
			crashAfter = true
		}
		what, err := randomOps[rng.IntN(len(randomOps))](t, rng, e, p, &m)
		if err != nil {
			t.Fatalf("step %d: %s: %v", step, what, err)
		}
		if crashAfter {
			take(pointAfterOp)
		}
		e.check()
		after := e.world()
		if got := e.list(); !reflect.DeepEqual(got, m.list()) {
			t.Fatalf("step %d: %s:\n got %v\nwant %v", step, what, got, m.list())
		}
		if snap == nil {
			continue
		}
		e = e.restart(*snap)
		rep := e.reconcile()
		if rep.Repaired() {
			t.Fatalf("step %d: %s, crash at %q: reconcile repaired %+v", step, what, point, rep)
		}
		got := e.world()
		switch {
		case reflect.DeepEqual(got, after) && (committedAt(point) || point == "during Commit"):
			crashes["done"]++
		case reflect.DeepEqual(got, before) && !committedAt(point):
			crashes["undone"]++
			m = mBefore
		default:
			t.Fatalf("step %d: %s, crash at %q:\n  got %v\nbefore %v\n after %v", step, what, point, got, before, after)
		}
	}
	t.Logf("%d steps, crashes: %v, %d volumes at the end", steps, crashes, len(m.vols))
	if crashes["done"] == 0 || crashes["undone"] == 0 {
		t.Fatalf("crashes %v: want both outcomes", crashes)
	}
}
