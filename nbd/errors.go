package nbd

import (
	"context"
	"errors"
	"syscall"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// Sentinel errors a Backend may return (wrapped or not). They are
// syscall.Errno values, so a backend that passes through an errno from the
// kernel gets the same mapping.
var (
	// ErrNoSpace: the pool or volume is out of space (NBD_ENOSPC).
	ErrNoSpace error = syscall.ENOSPC
	// ErrReadOnly: the backend refuses to write (NBD_EPERM).
	ErrReadOnly error = syscall.EROFS
	// ErrNotSupported: a FAST_ZERO that cannot be fast (NBD_ENOTSUP).
	ErrNotSupported error = syscall.ENOTSUP
	// ErrShutdown: the backend is going away (NBD_ESHUTDOWN).
	ErrShutdown error = syscall.ESHUTDOWN
)

// errInvalid is what backends in this package return for a range the
// server should never have passed.
var errInvalid error = syscall.EINVAL

// ErrUnknownExport is returned by an ExportLookup for a name it does not
// serve. The client gets NBD_REP_ERR_UNKNOWN (or a closed connection for
// NBD_OPT_EXPORT_NAME, which has no error reply).
var ErrUnknownExport = errors.New("nbd: unknown export")

// ErrExportBusy is returned by an ExportLookup for an export that has as
// many connections as it allows. The client gets NBD_REP_ERR_POLICY with a
// message saying so (or a closed connection for NBD_OPT_EXPORT_NAME); it is
// counted as a LimitExport hit.
var ErrExportBusy = errors.New("nbd: export has as many connections as it allows")

// errnoOf maps a backend error to one of the eight NBD error values. It is
// the only place that does so. ENOTSUP is only legal as the answer to a
// FAST_ZERO request; anywhere else nbdkit's choice, EINVAL, is used.
func errnoOf(err error, fastZero bool) uint32 {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The connection or the server is going away.
		return wire.ESHUTDOWN
	case !errors.As(err, &errno):
		return wire.EIO
	}
	switch errno {
	case syscall.EPERM, syscall.EACCES, syscall.EROFS:
		return wire.EPERM
	case syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG:
		return wire.ENOSPC
	case syscall.EINVAL:
		return wire.EINVAL
	case syscall.ENOMEM:
		return wire.ENOMEM
	case syscall.EOVERFLOW:
		return wire.EOVERFLOW
	case syscall.ENOTSUP: // == EOPNOTSUPP on Linux
		if fastZero {
			return wire.ENOTSUP
		}
		return wire.EINVAL
	case syscall.ESHUTDOWN:
		return wire.ESHUTDOWN
	}
	return wire.EIO
}

// errnoName names an NBD error value for statistics and logs.
func errnoName(e uint32) string {
	switch e {
	case 0:
		return "ok"
	case wire.EPERM:
		return "EPERM"
	case wire.EIO:
		return "EIO"
	case wire.ENOMEM:
		return "ENOMEM"
	case wire.EINVAL:
		return "EINVAL"
	case wire.ENOSPC:
		return "ENOSPC"
	case wire.EOVERFLOW:
		return "EOVERFLOW"
	case wire.ENOTSUP:
		return "ENOTSUP"
	case wire.ESHUTDOWN:
		return "ESHUTDOWN"
	}
	return "unknown"
}
