package catalog_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/thinmeta"
)

// The daemon's start-up: open the pool metadata and the catalog,
// reconcile, then change volumes through the catalog, which keeps both
// stores in step.
func Example() {
	ctx := context.Background()
	dev := bm.NewMemDevice(256 * bm.BlockSize)
	pool, err := thinmeta.Create(dev, 256, 128, 1024, thinmeta.Options{}) //pooltest:an Example has no testing.T to check its pool with
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	cat, err := catalog.Open(ctx, "catalog", catalog.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	defer cat.Close()

	rep, err := cat.Reconcile(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("reconciled: new catalog %v, repairs %v\n", rep.Initialized, rep.Repaired())

	if _, err := cat.CreateVolume(ctx, pool, catalog.Spec{Name: "default", Size: 1 << 30}); err != nil {
		log.Fatal(err)
	}
	snap, err := cat.SnapshotVolume(ctx, pool, "default", catalog.Spec{
		Name:   "default.backup",
		Labels: map[string]string{"kind": "backup"},
		Export: catalog.ExportSettings{ReadOnly: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: device %d, snapshot of %s (device %d)\n", snap.Name, snap.DevID, snap.Origin.Name, snap.Origin.DevID)

	backups, err := cat.List(ctx, catalog.Filter{Labels: map[string]string{"kind": "backup"}})
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range backups {
		fmt.Printf("backup %s, %d bytes, read-only %v\n", v.Name, v.Size, v.Export.ReadOnly)
	}
	fmt.Println("metadata transaction id:", pool.TransactionID())
	// Output:
	// reconciled: new catalog true, repairs false
	// default.backup: device 2, snapshot of default (device 1)
	// backup default.backup, 1073741824 bytes, read-only true
	// metadata transaction id: 2
}
