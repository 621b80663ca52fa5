package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/nbd"
	"github.com/thind-storage/thind/thinpool"
)

// ErrBusy is returned for a change that needs a volume nobody serves.
var ErrBusy = errors.New("volume is in use")

// registry holds the thin devices being served: one open handle per
// volume, shared by its connections, closed with the last one.
type registry struct {
	mu   sync.Mutex
	vols map[string]*served
}

type served struct {
	th   *thinpool.Thin
	refs int
}

func (r *registry) users(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.vols[name]; s != nil {
		return s.refs
	}
	return 0
}

// thin returns the served handle of a volume, nil if it is not served.
func (r *registry) thin(name string) *thinpool.Thin {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.vols[name]; s != nil {
		return s.th
	}
	return nil
}

// exports implements nbd.ExportLookup over the catalog.
type exports struct{ d *Daemon }

func (e exports) ListExports(ctx context.Context) ([]nbd.ExportSummary, error) {
	vols, err := e.d.cat.List(ctx, catalog.Filter{})
	if err != nil {
		return nil, err
	}
	peer := nbd.PeerFromContext(ctx)
	out := make([]nbd.ExportSummary, 0, len(vols))
	for _, v := range vols {
		if v.Size == 0 || isStaging(v) {
			continue // adopted, not sized yet, or a receive's: nothing to serve
		}
		if ok, _ := admit(v.Export, peer); !ok {
			continue // a client does not learn of volumes it may not open
		}
		out = append(out, nbd.ExportSummary{Name: v.Name, Description: describe(v), TLSRequired: v.Export.RequireTLS})
	}
	return out, nil
}

func describe(v catalog.Volume) string {
	if v.Description != "" {
		return v.Description
	}
	if v.Origin != nil {
		return fmt.Sprintf("thin volume %s, snapshot of %s", v.Name, v.Origin.Name)
	}
	return "thin volume " + v.Name
}

func (e exports) LookupExport(ctx context.Context, name string) (*nbd.Export, error) {
	d := e.d
	if name == "" {
		name = d.cfg.DefaultVolume
	}
	v, err := d.cat.Get(ctx, name)
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && v.Size == 0) {
		return nil, fmt.Errorf("%q: %w", name, nbd.ErrUnknownExport)
	}
	if err == nil && isStaging(v) {
		return nil, fmt.Errorf("%q %w: %w", name, ErrStaging, nbd.ErrUnknownExport)
	}
	if err != nil {
		return nil, err
	}
	peer := nbd.PeerFromContext(ctx)
	ok, readOnly := admit(v.Export, peer)
	if !ok {
		d.log.Info("NBD client refused by the volume's access list", append([]any{"volume", v.Name}, peerAttrs(peer)...)...)
		return nil, fmt.Errorf("%w: no grant of its access list names this client", nbd.ErrAccessDenied)
	}
	th, release, err := d.acquire(v)
	if err != nil {
		return nil, err
	}
	return &nbd.Export{
		Name:        v.Name,
		Description: describe(v),
		Backend:     &thinBackend{th: th, readOnly: readOnly, d: d},
		ReadOnly:    readOnly,
		TLSRequired: v.Export.RequireTLS,
		Release:     release,
	}, nil
}

// acquire opens (or shares) the thin device of a volume for serving,
// refusing it beyond Config.MaxConnectionsPerVolume users (lookups for
// INFO and meta contexts count while they last).
func (d *Daemon) acquire(v catalog.Volume) (*thinpool.Thin, func(), error) {
	r := &d.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.vols[v.Name]
	if limit := d.cfg.MaxConnectionsPerVolume; s != nil && limit > 0 && s.refs >= limit {
		return nil, nil, fmt.Errorf("volume %s has %d connections, the most one volume may have (--max-connections-per-volume): %w",
			v.Name, s.refs, nbd.ErrExportBusy)
	}
	if s == nil {
		th, err := d.st.engine.OpenThin(v.DevID, v.Size)
		if err != nil {
			return nil, nil, err
		}
		s = &served{th: th}
		r.vols[v.Name] = s
	}
	s.refs++
	var once sync.Once
	return s.th, func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if s.refs--; s.refs == 0 {
				s.th.Close()
				delete(r.vols, v.Name)
			}
		})
	}, nil
}
