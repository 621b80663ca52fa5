package daemon

import (
	"context"
	"fmt"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/thinpool"
)

// Diff states of a range, on the wire.
const (
	DiffChanged  = "changed"  // TARGET's data differs from BASE's
	DiffUnmapped = "unmapped" // BASE maps it, TARGET does not: reads as zeroes
)

// DiffHeader opens a diff: what is compared, from where.
type DiffHeader struct {
	Base      string `json:"base"`
	Target    string `json:"target"`
	Size      uint64 `json:"size"` // TARGET's size: the diff ends there
	BlockSize uint64 `json:"block_size"`
	Start     uint64 `json:"start"` // where this stream starts
}

// DiffRange is one range where TARGET differs from BASE.
type DiffRange struct {
	Offset uint64 `json:"offset"`
	Length uint64 `json:"length"`
	State  string `json:"state"`
}

// DiffEnd closes a complete diff. A stream without it was cut short: it
// resumes from the end of its last range (or its header's start).
type DiffEnd struct {
	Done          bool   `json:"done"`
	ChangedBytes  uint64 `json:"changed_bytes"`
	UnmappedBytes uint64 `json:"unmapped_bytes"`
}

// DiffLine is any line of a diff stream (NDJSON): a header, a range, the
// end, or an error that ended the stream.
type DiffLine struct {
	*DiffHeader
	*DiffRange
	*DiffEnd
	Error string `json:"error,omitempty"`
}

// PrepareDiff checks a diff of volume target against volume base from
// byte offset and returns its header; errors here come before any range.
// Any two volumes compare: a volume and its snapshot, two snapshots,
// unrelated volumes.
func (d *Daemon) PrepareDiff(ctx context.Context, base, target string, offset uint64) (DiffHeader, error) {
	b, err := d.cat.Get(ctx, base)
	if err != nil {
		return DiffHeader{}, err
	}
	t, err := d.cat.Get(ctx, target)
	if err != nil {
		return DiffHeader{}, err
	}
	if offset > t.Size {
		return DiffHeader{}, fmt.Errorf("offset %d past the end of %s (%d bytes): %w", offset, target, t.Size, catalog.ErrInvalid)
	}
	return DiffHeader{Base: b.Name, Target: t.Name, Size: t.Size, BlockSize: d.cfg.BlockSize, Start: offset}, nil
}

// Diff streams the ranges where h's target differs from its base, from
// h.Start to the target's end, to fn, and returns the totals. It
// compares the devices' mapping trees, skipping what they share, so its
// cost follows the changes; the volumes may be in use meanwhile.
func (d *Daemon) Diff(ctx context.Context, h DiffHeader, fn func(DiffRange) error) (DiffEnd, error) {
	b, err := d.cat.Get(ctx, h.Base)
	if err != nil {
		return DiffEnd{}, err
	}
	t, err := d.cat.Get(ctx, h.Target)
	if err != nil {
		return DiffEnd{}, err
	}
	end := DiffEnd{Done: true}
	err = d.st.engine.Diff(ctx, b.DevID, t.DevID, h.Start, min(h.Size, t.Size), func(x thinpool.DiffExtent) error {
		r := DiffRange{Offset: x.Off, Length: x.Len, State: DiffChanged}
		if x.Unmapped {
			r.State = DiffUnmapped
			end.UnmappedBytes += x.Len
		} else {
			end.ChangedBytes += x.Len
		}
		return fn(r)
	})
	if err != nil {
		return DiffEnd{}, fmt.Errorf("diff of %s against %s: %w", h.Target, h.Base, err)
	}
	return end, nil
}
