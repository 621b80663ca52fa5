package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configure Open. The zero value is usable.
type Options struct {
	// FS is the file system pebble runs on; nil means the real one. Tests
	// pass vfs.NewCrashableMem() to simulate power cuts.
	FS vfs.FS
	// Logger receives the catalog's and pebble's messages; nil discards
	// them.
	Logger *slog.Logger
	// Now stamps new volumes; nil means time.Now.
	Now func() time.Time
}

// Catalog is the volume catalog of one thin pool, stored in pebble. Its
// methods are safe for concurrent use; the changes are serialized.
type Catalog struct {
	db  *pebble.DB
	log *slog.Logger
	now func() time.Time

	// opMu serializes changes and Reconcile: at most one intent is ever
	// pending, and the device id allocator sees a stable catalog.
	opMu sync.Mutex
	// ready is true once Reconcile has succeeded and no operation has
	// since failed with its outcome undecided. Guarded by opMu.
	ready bool

	// closeMu keeps reads and changes from racing Close: they hold it
	// shared, Close exclusively.
	closeMu sync.RWMutex
	closed  bool
}

// pebbleOptions are sized for a catalog of at most thousands of small
// records: a 256 KiB memtable (pebble's default is 4 MiB, sized for
// databases that are written to constantly), a 1 MiB block cache, few
// open files. The format version is pinned, because an upgrade is one
// way: it moves only when this code says so. WAL sync chunks (from
// FormatWALSyncChunks) let pebble tell a torn WAL tail, which a crash
// leaves, from corruption in the middle.
func pebbleOptions(o Options, log *slog.Logger) *pebble.Options {
	return &pebble.Options{
		FS:                 o.FS,
		Logger:             pebbleLogger{log.With("component", "pebble")},
		MemTableSize:       256 << 10,
		CacheSize:          1 << 20,
		MaxOpenFiles:       64,
		FormatMajorVersion: pebble.FormatWALSyncChunks,
	}
}

// Open opens (creating if need be) the catalog in dir. Changes are refused
// with ErrNeedsReconcile until Reconcile has run against the pool.
func Open(ctx context.Context, dir string, o Options) (*Catalog, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = discardLogger()
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	db, err := pebble.Open(dir, pebbleOptions(o, log))
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", dir, err)
	}
	return &Catalog{db: db, log: log, now: o.Now}, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Close waits for a change under way and closes the store. Later calls
// return ErrClosed.
func (c *Catalog) Close() error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.closed = true
	c.ready = false
	return c.db.Close()
}

// read runs fn with the store open.
func (c *Catalog) read(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	return fn()
}

// change runs fn holding opMu with the store open, after checking that
// the catalog may be changed and ctx is live: a change is cancelled
// before it starts or not at all.
func (c *Catalog) change(ctx context.Context, fn func() error) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	return c.read(ctx, func() error {
		if !c.ready {
			return ErrNeedsReconcile
		}
		return fn()
	})
}

// get returns the value of key, or nil if absent.
func (c *Catalog) get(key []byte) ([]byte, error) {
	v, closer, err := c.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("catalog get %q: %w", key, err)
	}
	out := append([]byte(nil), v...)
	return out, closer.Close()
}

// scan calls fn for every key and value under prefix, in key order. The
// slices are valid only during the call.
func (c *Catalog) scan(prefix string, fn func(k, v []byte) error) error {
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: upperBound(prefix)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			it.Close()
			return err
		}
	}
	return errors.Join(it.Error(), it.Close())
}
