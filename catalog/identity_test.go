package catalog

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestOwnershipOfANewAUsedAndAnIdentifiedCatalog(t *testing.T) {
	ctx := context.Background()
	e := &testEnv{t: t, fs: vfs.NewCrashableMem(), clock: &testClock{}}
	e.open()
	o, err := e.cat.Ownership(ctx)
	if err != nil || o.Used || !o.ID.IsZero() {
		t.Fatalf("a new catalog: %+v, %v; want unused, no id", o, err)
	}
	id := PoolID{0xde, 0xad, 15: 1}
	if err := e.cat.SetPoolID(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The identity alone does not make a catalog used.
	if o, err = e.cat.Ownership(ctx); err != nil || o.Used || o.ID != id {
		t.Fatalf("after SetPoolID: %+v, %v", o, err)
	}
	if err := e.cat.SetPoolID(ctx, PoolID{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetPoolID(zero): %v, want ErrInvalid", err)
	}

	u := newEnv(t)
	u.create("vol", 1<<20)
	if o, err = u.cat.Ownership(ctx); err != nil || !o.Used || !o.ID.IsZero() {
		t.Fatalf("a reconciled catalog with a volume: %+v, %v; want used, no id", o, err)
	}
}

func TestPoolIDRecordsDecodeStrictly(t *testing.T) {
	id := PoolID{1, 2, 3, 15: 4}
	if got, err := decodePoolID(encodePoolID(id)); err != nil || got != id {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	if s := id.String(); s != "01020300-0000-0000-0000-000000000004" {
		t.Errorf("String: %s", s)
	}
	for name, b := range map[string][]byte{
		"empty":         nil,
		"other version": append([]byte{2}, id[:]...),
		"short":         encodePoolID(id)[:10],
		"long":          append(encodePoolID(id), 0),
		"zero id":       encodePoolID(PoolID{}),
	} {
		if _, err := decodePoolID(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzPoolIDRecord(f *testing.F) {
	f.Add(encodePoolID(PoolID{9, 15: 9}))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := decodePoolID(b)
		if err != nil {
			return
		}
		if again := encodePoolID(id); !bytes.Equal(again, b) {
			t.Fatalf("decoded %x to %v, which encodes as %x", b, id, again)
		}
	})
}

// ReadOwnership answers for a missing, an empty and a real catalog, and
// leaves every byte of the real one as it was.
func TestReadOwnershipChangesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if o, err := ReadOwnership(ctx, dir+"/missing", Options{}); err != nil || o.Used || !o.ID.IsZero() {
		t.Fatalf("a missing catalog: %+v, %v", o, err)
	}
	if o, err := ReadOwnership(ctx, dir, Options{}); err != nil || o.Used {
		t.Fatalf("an empty directory: %+v, %v", o, err)
	}
	cat, err := Open(ctx, dir+"/cat", Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := PoolID{7, 15: 7}
	if err := cat.SetPoolID(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := cat.Close(); err != nil {
		t.Fatal(err)
	}
	before := dirBytes(t, dir+"/cat")
	o, err := ReadOwnership(ctx, dir+"/cat", Options{})
	if err != nil || o.ID != id {
		t.Fatalf("ReadOwnership: %+v, %v; want id %v", o, err, id)
	}
	if after := dirBytes(t, dir+"/cat"); !maps.Equal(before, after) {
		t.Errorf("ReadOwnership changed the catalog's files: %d files before, %d after", len(before), len(after))
	}
}

func dirBytes(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}
