package daemon

import (
	"context"

	"github.com/thind-storage/thind/thinpool"
)

// OpenForTest opens a volume's thin device as the NBD server would, for
// tests that read it without a network client; release closes it.
func (d *Daemon) OpenForTest(ctx context.Context, name string) (*thinpool.Thin, func(), error) {
	v, err := d.cat.Get(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	return d.acquire(v)
}
