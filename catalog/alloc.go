package catalog

import (
	"fmt"

	"github.com/thind-storage/thind/thinmeta"
)

// allocID picks the device id for a new volume. Ids start at 1 (0 stays
// free for the daemon's or an operator's own use, as lvm leaves it) and
// go up from the state's next id, so a deleted volume's id is not handed
// out again until the allocator has gone round all 2^24 ids: snapshots
// name their origin by id, and that should stay unambiguous. Ids the
// metadata or the catalog still use are skipped: a device no volume
// names (an orphan not yet adopted) is never overwritten.
func (c *Catalog) allocID(pool PoolView) (uint64, error) {
	s, ok, err := c.loadState()
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("%w: no state record", ErrNeedsReconcile)
	}
	used, err := c.loadIDs()
	if err != nil {
		return 0, err
	}
	for _, d := range pool.Devices() {
		used[d.ID] = ""
	}
	id := s.nextID
	for range thinmeta.MaxDevID {
		if id < 1 || id > thinmeta.MaxDevID {
			id = 1
		}
		if _, ok := used[id]; !ok {
			return id, nil
		}
		id++
	}
	return 0, ErrNoDeviceID
}
