package catalog

import (
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentChangesAndReads runs creates, snapshots and resizes from
// several goroutines while others list: changes are serialized, reads
// see whole operations, and the stores agree at the end.
func TestConcurrentChangesAndReads(t *testing.T) {
	e := newEnv(t)
	e.create("origin", 1<<20)
	const writers, perWriter = 4, 8
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter+writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				name := fmt.Sprintf("w%d-%d", w, i)
				var err error
				if i%2 == 0 {
					_, err = e.cat.CreateVolume(bg, e.pool, Spec{Name: name, Size: 1 << 20})
				} else {
					_, err = e.cat.SnapshotVolume(bg, e.pool, "origin", Spec{Name: name})
				}
				if err == nil {
					_, err = e.cat.ResizeVolume(bg, e.pool, name, 2<<20)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				vs, err := e.cat.List(bg, Filter{})
				if err != nil {
					errs <- err
					return
				}
				for _, v := range vs {
					// A volume is listed only once its operation is
					// complete, so its device is committed.
					if _, err := e.pool.Device(v.DevID); err != nil {
						errs <- fmt.Errorf("listed %s before its device: %w", v.Name, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(e.list()); n != 1+writers*perWriter {
		t.Fatalf("%d volumes, want %d", n, 1+writers*perWriter)
	}
	if tx := e.pool.TransactionID(); tx != 1+2*writers*perWriter {
		t.Fatalf("transaction id %d, want one per change (%d)", tx, 1+2*writers*perWriter)
	}
	e.check()
}
