package catalog

import (
	"maps"
	"slices"
	"time"
)

// Volume is one thin volume as the catalog records it.
type Volume struct {
	// Name is the volume's name and NBD export name (see ValidName).
	Name string
	// DevID is the dm-thin device id holding the volume's blocks.
	DevID uint64
	// Size is the virtual size in bytes. A volume adopted by Reconcile
	// has size 0 until it is resized: dm-thin metadata keeps no size.
	Size uint64
	// Created is when the volume was created, in UTC.
	Created time.Time
	// Origin is the volume this one was snapshotted from, nil for a volume
	// created empty. It is lineage, kept after the origin is deleted.
	Origin *Origin
	// Labels are free-form key/value pairs (see ValidLabel).
	Labels map[string]string
	// Description is free text for people.
	Description string
	// Export says how the daemon may serve the volume over NBD.
	Export ExportSettings
}

// Origin names a snapshot's origin as it was when the snapshot was taken.
type Origin struct {
	Name  string
	DevID uint64
}

// ExportSettings are a volume's NBD export policy.
type ExportSettings struct {
	// ReadOnly exports the volume read-only.
	ReadOnly bool
	// RequireTLS refuses clients that do not negotiate TLS.
	RequireTLS bool
	// Access lists who may open the volume, and how (access.go). Empty:
	// every client that can reach the daemon's listeners.
	Access []Grant
}

// Spec is what a caller chooses for a new volume or snapshot; the
// catalog picks the device id and creation time.
type Spec struct {
	Name        string
	Size        uint64 // bytes; for a snapshot, 0 takes the origin's size
	Labels      map[string]string
	Description string
	Export      ExportSettings
}

// Update changes a volume's attributes that the thin metadata does not
// know about; nil fields are left alone.
type Update struct {
	// Labels replaces the whole label map (an empty map clears it).
	Labels      *map[string]string
	Description *string
	Export      *ExportSettings
}

// Filter selects volumes in List. The zero Filter selects all.
type Filter struct {
	// Labels must all be present with these values.
	Labels map[string]string
}

func (f Filter) match(v *Volume) bool {
	for k, want := range f.Labels {
		if got, ok := v.Labels[k]; !ok || got != want {
			return false
		}
	}
	return true
}

// clone returns a deep copy, so that callers never share maps or origins
// with the catalog's own copies.
func (v Volume) clone() Volume {
	if v.Origin != nil {
		o := *v.Origin
		v.Origin = &o
	}
	if v.Labels != nil {
		v.Labels = maps.Clone(v.Labels)
	}
	v.Export.Access = slices.Clone(v.Export.Access)
	return v
}
