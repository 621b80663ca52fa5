package daemon

import (
	"context"
	"errors"
	"syscall"

	"github.com/thind-storage/thind/nbd"
	"github.com/thind-storage/thind/thinpool"
)

// thinBackend serves a thin device over NBD.
type thinBackend struct {
	th       *thinpool.Thin
	readOnly bool
	d        *Daemon // for the dirty bitmaps: the catalog and the engine
}

var _ nbd.Backend = (*thinBackend)(nil)

func (b *thinBackend) Size() int64 { return int64(b.th.Size()) }

// Capabilities: a thin device does everything, and every connection to a
// volume goes through one engine with no private cache, where a FLUSH
// commits the whole pool: multi-conn is safe.
func (b *thinBackend) Capabilities() nbd.Capabilities {
	return nbd.Capabilities{
		ReadOnly:    b.readOnly,
		Flush:       true,
		FUA:         true,
		Trim:        true,
		Zero:        true,
		FastZero:    true,
		Cache:       true,
		BlockStatus: true,
		MultiConn:   true,
	}
}

func (b *thinBackend) ReadAt(ctx context.Context, p []byte, off int64) error {
	return nbdError(b.th.ReadAt(ctx, p, uint64(off)))
}

// ReadAtNoWait serves a READ the connection's reader may answer itself
// (nbd.NoWaitReader).
func (b *thinBackend) ReadAtNoWait(p []byte, off int64) (bool, error) {
	ok, err := b.th.TryReadAt(p, uint64(off))
	return ok, nbdError(err)
}

func (b *thinBackend) WriteAt(ctx context.Context, p []byte, off int64, flags nbd.Flags) error {
	return nbdError(b.th.WriteAt(ctx, p, uint64(off), flags&nbd.FlagFUA != 0))
}

func (b *thinBackend) Flush(ctx context.Context) error {
	return nbdError(b.th.Flush(ctx))
}

func (b *thinBackend) Trim(ctx context.Context, off, length int64, flags nbd.Flags) error {
	if err := b.th.Discard(ctx, uint64(off), uint64(length)); err != nil {
		return nbdError(err)
	}
	if flags&nbd.FlagFUA != 0 {
		return nbdError(b.th.Flush(ctx))
	}
	return nil
}

// Zero is always fast on a thin device: whole blocks are unmapped (or,
// with NO_HOLE, provisioned with a metadata-only zero range), and only the
// partial blocks at the edges are written.
func (b *thinBackend) Zero(ctx context.Context, off, length int64, flags nbd.Flags) error {
	return nbdError(b.th.WriteZeroes(ctx, uint64(off), uint64(length), flags&nbd.FlagNoHole != 0, flags&nbd.FlagFUA != 0))
}

func (b *thinBackend) Cache(context.Context, int64, int64) error { return nil }

func (b *thinBackend) BlockStatus(ctx context.Context, off, length int64, max int, dst []nbd.Extent) ([]nbd.Extent, error) {
	exts, err := b.th.BlockStatus(ctx, uint64(off), uint64(length), max, nil)
	if err != nil {
		return dst, nbdError(err)
	}
	for _, e := range exts {
		var f nbd.ExtentFlags
		if !e.Mapped {
			f = nbd.ExtentHole | nbd.ExtentZero
		}
		dst = append(dst, nbd.Extent{Length: int64(e.Len), Flags: f})
	}
	return dst, nil
}

// nbdError maps engine errors to the errno the NBD client should see.
func nbdError(err error) error {
	var re *thinpool.RangeError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, thinpool.ErrNoSpace), errors.Is(err, thinpool.ErrMetadataSpace):
		return nbd.ErrNoSpace
	case errors.Is(err, thinpool.ErrClosed):
		return nbd.ErrShutdown
	case errors.As(err, &re):
		return syscall.EINVAL
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nbd.ErrShutdown
	}
	return syscall.EIO
}
