package nbd

import "context"

// Backend is the storage behind one export: positional operations plus a
// capability query, in the manner of an nbdkit plugin. The server never
// hands a backend a request it has not validated: offsets and lengths are in
// range (off >= 0, length > 0, off+length <= Size()), flags are ones the
// backend declared, and write operations never reach a read-only export. A
// backend may therefore treat a violation as a bug.
//
// A Backend is shared by every connection to its export, so its methods are
// called concurrently, also for overlapping ranges (the client owns the
// order of overlapping requests). All methods honour ctx: it is cancelled
// when the connection breaks (socket error, protocol violation) or the
// server gives up a graceful shutdown (Options.ShutdownTimeout); a client
// that disconnects cleanly has its requests finished.
//
// Errors map to NBD error values in one place (see errors.go): return a
// syscall.Errno (EIO, ENOSPC, EPERM, ...), possibly wrapped, or one of the
// sentinels such as ErrNoSpace. Anything else is reported as EIO.
type Backend interface {
	// Size is the export size in bytes; the daemon must keep it a
	// multiple of 512 (better 4096) because kernel clients round down.
	// The handshake reports it when the client selects the export, and
	// the server checks every request against its value then: it may
	// grow while connections are open (online expansion), and must not
	// shrink, as the server never reads or writes past it.
	Size() int64

	// Capabilities reports what the backend can do. It is read once per
	// connection, when the client selects the export; the server advertises transmission flags from
	// it and rejects commands the backend did not declare.
	Capabilities() Capabilities

	// ReadAt fills p from offset off. It must fill all of p or fail.
	ReadAt(ctx context.Context, p []byte, off int64) error

	// WriteAt writes p at off. With FlagFUA the data must be durable before
	// WriteAt returns; FlagFUA is passed only if Capabilities().FUA is set
	// (otherwise the server follows the write with Flush).
	WriteAt(ctx context.Context, p []byte, off int64, flags Flags) error

	// Flush makes every write that has completed, on any connection, durable.
	// With Capabilities().MultiConn it must also make them visible to every
	// connection, which a backend without private caches does anyway.
	Flush(ctx context.Context) error

	// Trim deallocates [off, off+length): a hint that may do less (whole
	// chunks only), after which the contents are unspecified. FlagFUA as for
	// WriteAt.
	Trim(ctx context.Context, off, length int64, flags Flags) error

	// Zero makes [off, off+length) read as zeros. Without FlagNoHole it may
	// deallocate; with FlagNoHole the range must end up allocated, so later
	// writes cannot fail with ENOSPC. With FlagFastZero it must either finish
	// quickly (deallocation, metadata only) or fail at once with
	// ErrNotSupported (ENOTSUP) and without touching any data. Without
	// FlagFastZero it must never fail with ENOTSUP. FlagFUA as for WriteAt.
	Zero(ctx context.Context, off, length int64, flags Flags) error

	// Cache is a prefetch hint for [off, off+length). It must not change
	// what reads return; a backend with nothing to prefetch returns nil.
	Cache(ctx context.Context, off, length int64) error

	// BlockStatus appends to dst the allocation state of the range starting
	// at off, as contiguous extents: the first starts at off, each has a
	// positive length, adjacent extents should differ in flags. It may cover
	// less than length (at least one extent), may run past off+length but
	// not past Size(), and stops after max extents. The server calls it for
	// NBD_CMD_BLOCK_STATUS (base:allocation) and, in structured READs, to
	// answer ranges that read as zeros with hole chunks instead of data.
	// Only called if Capabilities().BlockStatus is set; otherwise the
	// server reports everything as data.
	BlockStatus(ctx context.Context, off, length int64, max int, dst []Extent) ([]Extent, error)
}

// NoWaitReader is implemented by backends that can serve some READs
// without waiting: from memory, with no lock or I/O to wait for. A
// connection's reader then answers a small READ itself when nothing else
// is in flight (queue depth 1), saving the handoff to a worker; a READ
// the backend refuses goes to a worker as usual.
type NoWaitReader interface {
	// ReadAtNoWait fills p from off and returns true, or returns false
	// at once, p undefined, where ReadAt would have to wait. An error
	// also sends the READ to a worker, whose ReadAt reports it.
	ReadAtNoWait(p []byte, off int64) (bool, error)
}

// Capabilities is what a backend declares it supports. Each field gates a
// transmission flag; the server rejects (EINVAL) commands a client sends
// without the flag having been advertised.
type Capabilities struct {
	// ReadOnly refuses WRITE, TRIM and WRITE_ZEROES with EPERM and
	// advertises NBD_FLAG_READ_ONLY. An export can also be made read-only
	// by Export.ReadOnly without the backend knowing.
	ReadOnly bool
	// Flush advertises NBD_FLAG_SEND_FLUSH (the kernel then enables its
	// write-back cache and sends FLUSH on sync).
	Flush bool
	// FUA means WriteAt, Trim and Zero honour FlagFUA natively. If it is
	// false but Flush is true the server still advertises SEND_FUA and
	// emulates FUA with a Flush after the operation.
	FUA bool
	// Trim advertises NBD_FLAG_SEND_TRIM.
	Trim bool
	// Zero advertises NBD_FLAG_SEND_WRITE_ZEROES (and NO_HOLE support).
	Zero bool
	// FastZero advertises NBD_FLAG_SEND_FAST_ZERO; it needs Zero.
	FastZero bool
	// Cache advertises NBD_FLAG_SEND_CACHE.
	Cache bool
	// BlockStatus means BlockStatus reports real allocation. Without it
	// base:allocation is still offered, and reports all data.
	BlockStatus bool
	// MultiConn advertises NBD_FLAG_CAN_MULTI_CONN: all connections share
	// one backend without private caches, and Flush or a FUA write on any
	// connection covers writes completed on every connection. The kernel
	// refuses nbd-client -C N (N > 1) without it.
	MultiConn bool
	// MinBlockSize and PreferredBlockSize are reported in NBD_INFO_BLOCK_SIZE;
	// zero means 1 and 4096. MinBlockSize must be a power of two <= 65536,
	// PreferredBlockSize a power of two in [max(MinBlockSize, 512), 4096]
	// (go-nbd's client uses it as the kernel's logical block size). When
	// MinBlockSize > 1 the server rejects misaligned requests with EINVAL.
	MinBlockSize       uint32
	PreferredBlockSize uint32
}

// Flags modify WriteAt, Trim and Zero.
type Flags uint8

const (
	// FlagFUA forces the operation's effect to stable storage before the
	// call returns.
	FlagFUA Flags = 1 << iota
	// FlagNoHole asks Zero to leave the range allocated.
	FlagNoHole
	// FlagFastZero asks Zero to fail with ENOTSUP unless it is cheap.
	FlagFastZero
)

// Extent is one run of the allocation map returned by BlockStatus.
type Extent struct {
	Length int64
	Flags  ExtentFlags
}

// ExtentFlags are the states of a meta context's extents; the values are
// the wire's. base:allocation has ExtentHole and ExtentZero,
// qemu:dirty-bitmap:NAME has ExtentDirty.
type ExtentFlags uint32

const (
	// ExtentHole marks unallocated space: a write there may fail with
	// ENOSPC. Allocated space must never be reported as a hole.
	ExtentHole ExtentFlags = 1 << 0
	// ExtentZero marks space that reads as zeros. Structured READs answer
	// such ranges with hole chunks.
	ExtentZero ExtentFlags = 1 << 1
)

// ExtentDirty marks, in a qemu:dirty-bitmap:NAME context, space where the
// export differs from what the bitmap NAME tracks against
// (NBD_STATE_DIRTY, the same bit as ExtentHole in base:allocation).
const ExtentDirty ExtentFlags = 1 << 0

// DirtyBitmaps is implemented by a backend that can say where it differs
// from named bases. The server then offers qemu's meta contexts
// qemu:dirty-bitmap:NAME, one per base, which backup tools (nbdinfo
// --map, libnbd, virtnbdbackup) read to copy only what changed.
type DirtyBitmaps interface {
	// Bitmaps lists the names, in a stable order. It is read for each
	// LIST_META_CONTEXT and SET_META_CONTEXT.
	Bitmaps(ctx context.Context) ([]string, error)
	// DirtyStatus is BlockStatus for bitmap name: extents from off,
	// flagged ExtentDirty where the export differs from that base. A
	// name no longer known (a deleted base) is an error.
	DirtyStatus(ctx context.Context, name string, off, length int64, max int, dst []Extent) ([]Extent, error)
}
