package daemon

import (
	"errors"
	"testing"

	"github.com/thind-storage/thind/catalog"
)

func TestWhichCatalogsMayUseWhichMetadata(t *testing.T) {
	u, v := catalog.PoolID{1, 15: 1}, catalog.PoolID{2, 15: 2}
	blank := metaIdentity{}
	none := metaIdentity{formatted: true}
	ownedU := metaIdentity{formatted: true, id: u}
	for _, c := range []struct {
		name   string
		meta   metaIdentity
		own    catalog.Ownership
		adopt  bool
		refuse bool
		keepID bool // the plan keeps the catalog's id
		newID  bool // the plan sets a fresh id
	}{
		{name: "a new pool", meta: blank, newID: true},
		{name: "a new pool whose first start stopped after the catalog took its id", meta: blank, own: catalog.Ownership{ID: v}, keepID: true},
		{name: "a pool Linux or thin_restore made, with a new catalog", meta: none, newID: true},
		{name: "the catalog's own pool", meta: ownedU, own: catalog.Ownership{ID: u, Used: true}},
		{name: "the catalog's own pool before its first reconcile", meta: ownedU, own: catalog.Ownership{ID: u}},
		{name: "another pool's devices", meta: ownedU, own: catalog.Ownership{ID: v, Used: true}, refuse: true},
		{name: "another pool's devices, adopted", meta: ownedU, own: catalog.Ownership{ID: v, Used: true}, adopt: true, newID: true},
		{name: "an owned pool and a new catalog", meta: ownedU, refuse: true},
		{name: "an owned pool and a new catalog, adopted", meta: ownedU, adopt: true, newID: true},
		{name: "restored metadata for a used catalog", meta: none, own: catalog.Ownership{ID: u, Used: true}, refuse: true},
		{name: "restored metadata for a used catalog, adopted", meta: none, own: catalog.Ownership{ID: u, Used: true}, adopt: true, newID: true},
		{name: "an older thind's catalog and pool", meta: none, own: catalog.Ownership{Used: true}, refuse: true},
		{name: "a used catalog and blank metadata", meta: blank, own: catalog.Ownership{ID: u, Used: true}, refuse: true},
		{name: "a used catalog and blank metadata, even adopted", meta: blank, own: catalog.Ownership{ID: u, Used: true}, adopt: true, refuse: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := &Config{DataDir: "/pool", MetadataDevice: "/pool/metadata", Adopt: c.adopt}
			plan, err := checkIdentity(cfg, c.meta, c.own)
			if c.refuse {
				if !errors.Is(err, ErrNotThisPool) {
					t.Fatalf("got %+v, %v; want a refusal", plan, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case c.keepID && plan.id != c.own.ID:
				t.Errorf("plan id %v, want the catalog's %v", plan.id, c.own.ID)
			case c.newID && (plan.id.IsZero() || plan.id == c.own.ID || plan.id == c.meta.id):
				t.Errorf("plan id %v, want a fresh one", plan.id)
			case !c.keepID && !c.newID && !plan.id.IsZero():
				t.Errorf("plan id %v, want none (they agree)", plan.id)
			}
		})
	}
}
