package catalog

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/thind-storage/thind/thinmeta"
)

var bg = context.Background()

func names(vs []Volume) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Name
	}
	return out
}

func TestChangesWaitForReconcile(t *testing.T) {
	e := newEnv(t)
	e.create("a", 1<<20)
	if err := e.cat.Close(); err != nil {
		t.Fatal(err)
	}
	e.open()
	if _, err := e.cat.CreateVolume(bg, e.pool, Spec{Name: "b", Size: 1 << 20}); !errors.Is(err, ErrNeedsReconcile) {
		t.Fatalf("create before reconcile: %v, want ErrNeedsReconcile", err)
	}
	if v, err := e.cat.Get(bg, "a"); err != nil || v.Name != "a" {
		t.Fatalf("reads work before reconcile: %+v, %v", v, err)
	}
	rep := e.reconcile()
	if rep.Initialized || rep.Pending != nil || rep.Repaired() {
		t.Fatalf("a clean reopen reported %+v", rep)
	}
	e.create("b", 1<<20)
}

func TestCreateGetListByID(t *testing.T) {
	e := newEnv(t)
	spec := Spec{Name: "web", Size: 10 << 20, Labels: map[string]string{"env": "prod"},
		Description: "web server root", Export: ExportSettings{RequireTLS: true}}
	web, err := e.cat.CreateVolume(bg, e.pool, spec)
	if err != nil {
		t.Fatal(err)
	}
	if web.DevID != 1 {
		t.Fatalf("first device id %d, want 1", web.DevID)
	}
	e.create("db", 20<<20)
	e.create("cache", 1<<20)
	e.check()

	got, err := e.cat.Get(bg, "web")
	if err != nil || !reflect.DeepEqual(got, web) {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, web)
	}
	byID, err := e.cat.ByID(bg, web.DevID)
	if err != nil || !reflect.DeepEqual(byID, web) {
		t.Fatalf("ByID = %+v, %v; want %+v", byID, err, web)
	}
	if want := []string{"cache", "db", "web"}; !slices.Equal(names(e.list()), want) {
		t.Fatalf("List = %v, want %v", names(e.list()), want)
	}
	prod, err := e.cat.List(bg, Filter{Labels: map[string]string{"env": "prod"}})
	if err != nil || !slices.Equal(names(prod), []string{"web"}) {
		t.Fatalf("List env=prod = %v, %v", names(prod), err)
	}
	none, err := e.cat.List(bg, Filter{Labels: map[string]string{"env": "dev"}})
	if err != nil || len(none) != 0 {
		t.Fatalf("List env=dev = %v, %v", names(none), err)
	}

	// A returned volume is a copy: changing it changes nothing stored.
	got.Labels["env"] = "changed"
	if again, _ := e.cat.Get(bg, "web"); again.Labels["env"] != "prod" {
		t.Fatalf("a caller's change to a returned map reached the catalog")
	}

	for _, tt := range []struct {
		name string
		err  error
		do   func() error
	}{
		{"a taken name", ErrExists, func() error { _, err := e.cat.CreateVolume(bg, e.pool, Spec{Name: "web", Size: 512}); return err }},
		{"an invalid name", ErrInvalid, func() error { _, err := e.cat.CreateVolume(bg, e.pool, Spec{Name: "Web", Size: 512}); return err }},
		{"the orphan prefix", ErrInvalid, func() error { _, err := e.cat.CreateVolume(bg, e.pool, Spec{Name: "orphan-9", Size: 512}); return err }},
		{"an unknown name", ErrNotFound, func() error { _, err := e.cat.Get(bg, "nope"); return err }},
		{"an invalid name to Get", ErrNotFound, func() error { _, err := e.cat.Get(bg, "../x"); return err }},
		{"an unknown id", ErrNotFound, func() error { _, err := e.cat.ByID(bg, 99); return err }},
	} {
		if err := tt.do(); !errors.Is(err, tt.err) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
		}
	}
	e.check()
}

func TestSnapshotLineageOutlivesTheOrigin(t *testing.T) {
	e := newEnv(t)
	base := e.create("base", 4<<20)
	s1, err := e.cat.SnapshotVolume(bg, e.pool, "base", Spec{Name: "base-1", Labels: map[string]string{"kind": "backup"}})
	if err != nil {
		t.Fatal(err)
	}
	if s1.Size != base.Size || s1.Origin == nil || *s1.Origin != (Origin{Name: "base", DevID: base.DevID}) {
		t.Fatalf("snapshot %+v, want base's size and origin", s1)
	}
	if _, err := e.cat.SnapshotVolume(bg, e.pool, "base", Spec{Name: "base-2", Size: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cat.SnapshotVolume(bg, e.pool, "base-1", Spec{Name: "base-1-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cat.SnapshotVolume(bg, e.pool, "nope", Spec{Name: "x"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("snapshot of a missing origin: %v", err)
	}
	kids, err := e.cat.Children(bg, base.DevID)
	if err != nil || !slices.Equal(names(kids), []string{"base-1", "base-2"}) {
		t.Fatalf("children of base: %v, %v", names(kids), err)
	}

	if err := e.cat.DeleteVolume(bg, e.pool, "base"); err != nil {
		t.Fatal(err)
	}
	// A new volume called base is not the old one's lineage.
	again := e.create("base", 4<<20)
	if again.DevID == base.DevID {
		t.Fatalf("device id %d handed out again", base.DevID)
	}
	kids, err = e.cat.Children(bg, base.DevID)
	if err != nil || !slices.Equal(names(kids), []string{"base-1", "base-2"}) {
		t.Fatalf("children of the deleted base: %v, %v", names(kids), err)
	}
	if kids, _ := e.cat.Children(bg, again.DevID); len(kids) != 0 {
		t.Fatalf("the new base has children %v", names(kids))
	}
	e.check()
}

func TestDeleteVolume(t *testing.T) {
	e := newEnv(t)
	v := e.create("a", 1<<20)
	e.mapBlocks(v.DevID, 0, 4)
	if err := e.cat.DeleteVolume(bg, e.pool, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cat.Get(bg, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
	if _, err := e.cat.ByID(bg, v.DevID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ByID after delete: %v", err)
	}
	if _, err := e.pool.Device(v.DevID); !errors.Is(err, thinmeta.ErrNoDevice) {
		t.Fatalf("device after delete: %v", err)
	}
	if err := e.cat.DeleteVolume(bg, e.pool, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	e.check()
}

func TestResizeUnmapsPastTheNewEnd(t *testing.T) {
	e := newEnv(t)
	v := e.create("a", 16*testBlockBytes)
	e.mapBlocks(v.DevID, 0, 16)
	mapped := func() uint64 {
		n, err := e.pool.MappedBlocks(v.DevID)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// 5.5 blocks: block 5 straddles the end and stays mapped.
	got, err := e.cat.ResizeVolume(bg, e.pool, "a", 5*testBlockBytes+testBlockBytes/2)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 5*testBlockBytes+testBlockBytes/2 || mapped() != 6 {
		t.Fatalf("after shrinking: size %d, %d blocks mapped; want 6", got.Size, mapped())
	}
	if _, err := e.cat.ResizeVolume(bg, e.pool, "a", 64*testBlockBytes); err != nil {
		t.Fatal(err)
	}
	if mapped() != 6 {
		t.Fatalf("growing changed the mappings: %d", mapped())
	}
	tx := e.pool.TransactionID()
	if _, err := e.cat.ResizeVolume(bg, e.pool, "a", 64*testBlockBytes); err != nil || e.pool.TransactionID() != tx {
		t.Fatalf("resizing to the same size: %v, transaction %d -> %d", err, tx, e.pool.TransactionID())
	}
	if _, err := e.cat.ResizeVolume(bg, e.pool, "a", 100); !errors.Is(err, ErrInvalid) {
		t.Fatalf("resize to 100 bytes: %v", err)
	}
	if v, _ := e.cat.Get(bg, "a"); v.Size != 64*testBlockBytes {
		t.Fatalf("size %d after resizes", v.Size)
	}
	e.check()
}

func TestUpdateVolume(t *testing.T) {
	e := newEnv(t)
	e.create("a", 1<<20)
	tx := e.pool.TransactionID()
	labels := map[string]string{"tier": "gold"}
	desc := "now described"
	exp := ExportSettings{ReadOnly: true, RequireTLS: true}
	got, err := e.cat.UpdateVolume(bg, "a", Update{Labels: &labels, Description: &desc, Export: &exp})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Labels, labels) || got.Description != desc || !reflect.DeepEqual(got.Export, exp) {
		t.Fatalf("updated to %+v", got)
	}
	if e.pool.TransactionID() != tx {
		t.Fatalf("an update moved the transaction id")
	}
	empty := map[string]string{}
	got, err = e.cat.UpdateVolume(bg, "a", Update{Labels: &empty})
	if err != nil || got.Labels != nil || got.Description != desc {
		t.Fatalf("clearing labels: %+v, %v", got, err)
	}
	bad := map[string]string{"Bad": "x"}
	if _, err := e.cat.UpdateVolume(bg, "a", Update{Labels: &bad}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid label: %v", err)
	}
	if _, err := e.cat.UpdateVolume(bg, "b", Update{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown volume: %v", err)
	}
}

func TestIDAllocation(t *testing.T) {
	t.Run("skips devices the metadata has", func(t *testing.T) {
		e := newEnv(t)
		// Device 1 made behind the catalog's back: an orphan until the
		// next Reconcile, and never overwritten.
		if err := e.pool.CreateThin(1); err != nil {
			t.Fatal(err)
		}
		if err := e.pool.Commit(); err != nil {
			t.Fatal(err)
		}
		if v := e.create("a", 512); v.DevID != 2 {
			t.Fatalf("got device %d, want 2", v.DevID)
		}
	})
	t.Run("never reuses a deleted id before wrapping", func(t *testing.T) {
		e := newEnv(t)
		a := e.create("a", 512)
		if err := e.cat.DeleteVolume(bg, e.pool, "a"); err != nil {
			t.Fatal(err)
		}
		if b := e.create("b", 512); b.DevID == a.DevID {
			t.Fatalf("id %d reused", a.DevID)
		}
	})
	t.Run("wraps to the lowest free id", func(t *testing.T) {
		e := newEnv(t)
		e.create("one", 512) // id 1
		s, _, err := e.cat.loadState()
		if err != nil {
			t.Fatal(err)
		}
		s.nextID = thinmeta.MaxDevID
		if err := e.cat.db.Set([]byte(keyState), encodeState(&s), nil); err != nil {
			t.Fatal(err)
		}
		if v := e.create("last", 512); v.DevID != thinmeta.MaxDevID {
			t.Fatalf("got %d, want %d", v.DevID, thinmeta.MaxDevID)
		}
		if v := e.create("wrapped", 512); v.DevID != 2 {
			t.Fatalf("after wrapping got %d, want 2", v.DevID)
		}
		e.check()
	})
}

func TestCancelledContextChangesNothing(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := e.cat.CreateVolume(ctx, e.pool, Spec{Name: "a", Size: 512}); !errors.Is(err, context.Canceled) {
		t.Fatalf("create: %v", err)
	}
	if _, err := e.cat.List(ctx, Filter{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("list: %v", err)
	}
	if len(e.list()) != 0 || e.pool.TransactionID() != 0 || len(e.pool.Devices()) != 0 {
		t.Fatalf("a cancelled create changed something")
	}
}

func TestClosedCatalog(t *testing.T) {
	e := newEnv(t)
	if err := e.cat.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.cat.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
	if _, err := e.cat.Get(bg, "a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
	if _, err := e.cat.CreateVolume(bg, e.pool, Spec{Name: "a", Size: 512}); !errors.Is(err, ErrClosed) {
		t.Fatalf("create after close: %v", err)
	}
}

// TestOnDisk runs the catalog on the real file system: what it writes
// survives a close and reopen.
func TestOnDisk(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t)
	open := func() *Catalog {
		c, err := Open(bg, dir, Options{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Reconcile(bg, e.pool); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open()
	v, err := c.CreateVolume(bg, e.pool, Spec{Name: "disk", Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = open()
	defer c.Close()
	got, err := c.ByID(bg, v.DevID)
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("after reopening: %+v, %v; want %+v", got, err, v)
	}
	if err := c.Check(bg, e.pool); err != nil {
		t.Fatal(err)
	}
}
