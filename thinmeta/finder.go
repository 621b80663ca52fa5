package thinmeta

import (
	"sync/atomic"

	"github.com/thind-storage/thind/internal/invariants"
)

// A Finder looks up the mappings of one device, as Find does, for a caller
// that makes many lookups in it (an open thin). It keeps the device's
// lock-free view from one lookup to the next, so that a lookup the cache
// answers does not search the published views for the device each time;
// it searches again whenever the views are republished (a device came or
// went, an abort, a failure). Safe for concurrent use.
type Finder struct {
	p    *Pool
	dev  uint64
	seen atomic.Pointer[seenView]
}

// seenView is the device's view in one publication of the views; nil when
// the device was not in it.
type seenView struct {
	views *map[uint64]*deviceView
	view  *deviceView
}

// Finder returns a Finder for device dev. The device need not exist yet.
func (p *Pool) Finder(dev uint64) *Finder { return &Finder{p: p, dev: dev} }

// Find returns vblock's mapping, like Pool.Find.
func (f *Finder) Find(vblock uint64) (Lookup, error) {
	if l, ok := f.FindCached(vblock); ok {
		return l, nil
	}
	return f.p.findLocked(f.dev, vblock)
}

// FindCached is Find answered by the lookup cache alone, for a caller
// that must not wait: false when the cache does not hold vblock's mapping
// (it never holds an unmapped block), where Find would search the B-tree
// under the pool's lock and perhaps read metadata.
func (f *Finder) FindCached(vblock uint64) (Lookup, bool) {
	p := f.p
	vs := p.views.Load()
	if vs == nil {
		return Lookup{}, false
	}
	s := f.seen.Load()
	if s == nil || s.views != vs {
		s = &seenView{views: vs, view: (*vs)[f.dev]}
		f.seen.Store(s)
	}
	l, ok := p.cached(s.view, vblock)
	if ok && invariants.Enabled {
		p.assertCacheAgrees(f.dev, vblock)
	}
	return l, ok
}
