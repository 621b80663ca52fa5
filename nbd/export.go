package nbd

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Export is what a client connects to: a name, its backend and per-export
// policy.
type Export struct {
	// Name is the canonical name, reported in NBD_INFO_NAME even when the
	// client asked for the default export by the empty name.
	Name string
	// Description is shown by NBD_OPT_LIST and NBD_INFO_DESCRIPTION.
	Description string
	// Backend serves the data; it is shared by all connections.
	Backend Backend
	// ReadOnly serves the export read-only whatever the backend allows.
	ReadOnly bool
	// TLSRequired hides the export from clients that have not completed
	// STARTTLS (SELECTIVETLS); they get NBD_REP_ERR_TLS_REQD.
	TLSRequired bool
	// Release, if set, is called once the server no longer uses this
	// lookup result: after an INFO or a failed GO, or when the connection
	// that selected it closes. A daemon uses it to pin a volume while
	// it is served.
	Release func()
}

// ExportSummary is one entry of an export listing.
type ExportSummary struct {
	Name        string
	Description string
	// TLSRequired entries are only listed to clients using TLS.
	TLSRequired bool
}

// ExportLookup is how the server finds exports; the daemon implements it
// over its catalog (nbd never imports the engine).
type ExportLookup interface {
	// ListExports returns the exports shown to NBD_OPT_LIST, in the order
	// they should be listed.
	ListExports(ctx context.Context) ([]ExportSummary, error)
	// LookupExport returns the export called name. The empty name is the
	// default export (the daemon maps it to the volume called "default").
	// An unknown name returns an error wrapping ErrUnknownExport.
	LookupExport(ctx context.Context, name string) (*Export, error)
}

// DefaultExportName is the name MapExports resolves the empty name to. It
// is also what go-nbd's client sends when its ExportName is empty, so with
// this naming "" and "default" reach the same export without the server
// aliasing names itself.
const DefaultExportName = "default"

// MapExports is an in-memory ExportLookup, for tests and for serving a fixed
// set of backends.
type MapExports struct {
	mu      sync.RWMutex
	exports map[string]*Export
	// Default is the name the empty name resolves to; "" means
	// DefaultExportName.
	Default string
}

// NewMapExports returns a lookup serving exports.
func NewMapExports(exports ...*Export) *MapExports {
	m := &MapExports{exports: make(map[string]*Export)}
	for _, e := range exports {
		m.Add(e)
	}
	return m
}

// Add adds or replaces an export.
func (m *MapExports) Add(e *Export) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.exports[e.Name] = e
}

// Remove removes an export; connections already serving it continue.
func (m *MapExports) Remove(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.exports, name)
}

// ListExports lists the exports sorted by name.
func (m *MapExports) ListExports(context.Context) ([]ExportSummary, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]ExportSummary, 0, len(m.exports))
	for _, e := range m.exports {
		out = append(out, ExportSummary{Name: e.Name, Description: e.Description, TLSRequired: e.TLSRequired})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// LookupExport finds an export by name, mapping "" to the default name.
func (m *MapExports) LookupExport(_ context.Context, name string) (*Export, error) {
	if name == "" {
		name = m.Default
		if name == "" {
			name = DefaultExportName
		}
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.exports[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownExport, name)
	}
	return e, nil
}
