package daemon

import (
	"errors"
	"fmt"
	"os"

	"github.com/thind-storage/thind/devlock"
)

// owner holds the locks that make this daemon the pool's only user, from
// before anything is read for writing until everything is closed. Lock
// order: the data directory, the metadata device, the data device.
type owner struct {
	locks   []*devlock.Lock
	created []string // files this start created, removed if it fails
}

// claimPool locks the data directory (the catalog and the sockets), then
// the metadata and data devices, creating the sparse files of a new pool
// first. A device another process holds is refused with one line naming
// it; nothing existing is changed.
func claimPool(c *Config) (_ *owner, err error) {
	if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
		return nil, err
	}
	o := &owner{}
	defer func() {
		if err != nil {
			o.release(true)
		}
	}()
	if err := o.lock("data directory", c.DataDir); err != nil {
		return nil, err
	}
	for _, dev := range []struct {
		what string
		path string
		size uint64
	}{
		{"metadata device", c.MetadataDevice, c.MetadataSize},
		{"data device", c.DataDevice, c.DataSize},
	} {
		created, err := createFile(dev.path, dev.size)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dev.what, err)
		}
		if created {
			o.created = append(o.created, dev.path)
		}
		if err := o.lock(dev.what, dev.path); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (o *owner) lock(what, path string) error {
	l, err := devlock.Exclusive(path)
	if errors.Is(err, devlock.ErrHeld) {
		return fmt.Errorf("the pool is already in use: %s %w", what, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	o.locks = append(o.locks, l)
	return nil
}

// release drops the locks, last taken first; after a failed start it
// also removes the files that start created.
func (o *owner) release(failed bool) error {
	if o == nil {
		return nil
	}
	var errs []error
	if failed {
		for _, p := range o.created {
			errs = append(errs, os.Remove(p))
		}
		o.created = nil
	}
	for i := len(o.locks) - 1; i >= 0; i-- {
		errs = append(errs, o.locks[i].Close())
	}
	o.locks = nil
	return errors.Join(errs...)
}

// createFile creates a sparse file of size bytes if path does not exist,
// and reports whether it did.
func createFile(path string, size uint64) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	err = f.Truncate(int64(size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return false, err
	}
	return true, nil
}
