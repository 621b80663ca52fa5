package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/thind-storage/thind/catalog"
)

// A receive's staging volume (NAME.receiving, labelled with the stream it
// receives) is the receive's own until it completes: it is not listed
// (unless asked for all), not served over NBD nor offered as a dirty
// bitmap, not a snapshot origin, send or diff volume, and not resized,
// changed or deleted by name. Only the receive writes it, and
// AbortReceive removes it.

// ErrStaging refuses a staging volume where a volume is wanted.
var ErrStaging = errors.New("is a receive's staging volume, not a volume until the receive completes")

// isStaging reports whether v is a receive's staging volume.
func isStaging(v catalog.Volume) bool { return v.Labels[labelReceiving] != "" }

// refuseStaging fails if one of the named volumes is a staging volume.
// A missing one is the caller's to report.
func (d *Daemon) refuseStaging(ctx context.Context, names ...string) error {
	for _, n := range names {
		if n == "" {
			continue
		}
		v, err := d.cat.Get(ctx, n)
		if err == nil && isStaging(v) {
			return fmt.Errorf("%s %w (abort it with `thind volume receive %s --abort`): %w",
				n, ErrStaging, v.Name[:len(v.Name)-len(stagingSuffix)], catalog.ErrInvalid)
		}
	}
	return nil
}

// withoutStaging drops the staging volumes from a list.
func withoutStaging(vols []catalog.Volume) []catalog.Volume {
	out := vols[:0:0]
	for _, v := range vols {
		if !isStaging(v) {
			out = append(out, v)
		}
	}
	return out
}

// AbortReceive gives up an interrupted receive into name: it deletes the
// staging volume and what landed there. A receive in progress is busy.
func (d *Daemon) AbortReceive(ctx context.Context, name string) error {
	st, err := stagingName(name)
	if err != nil {
		return err
	}
	if !d.recvMu.TryLock() {
		return fmt.Errorf("a receive is in progress: %w", ErrBusy)
	}
	defer d.recvMu.Unlock()
	v, err := d.cat.Get(ctx, st)
	if err != nil {
		return fmt.Errorf("no interrupted receive into %s: %w", name, err)
	}
	if !isStaging(v) {
		return fmt.Errorf("%s is not a receive's staging volume: %w", st, catalog.ErrInvalid)
	}
	return d.DeleteVolume(ctx, st)
}
