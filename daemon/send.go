package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/sendstream"
	"github.com/thind-storage/thind/thinpool"
)

// ErrBadToken refuses a resume token that does not belong to the stream
// asked for: a sender trusts nothing a receiver hands it.
var ErrBadToken = errors.New("the resume token does not fit this stream")

// sendChunk is how much a sender reads at once.
const sendChunk = 1 << 20

// sendID is a volume's identity on the wire: the pool's id, its device
// id and its creation time, which a receiver records and an incremental
// stream names as its base. A deleted and recreated volume differs.
func (d *Daemon) sendID(v catalog.Volume) string {
	return fmt.Sprintf("%s/%d/%d", catalog.PoolID(d.st.md.UUID()).String(), v.DevID, v.Created.UnixNano())
}

// SendHeader checks a send of snapshot (an incremental one from base, if
// not empty; resumed at a token's offset, if token is not empty) and
// returns the stream's header; errors here come before any byte.
func (d *Daemon) SendHeader(ctx context.Context, snapshot, base, token string) (sendstream.Header, error) {
	if err := d.refuseStaging(ctx, snapshot, base); err != nil {
		return sendstream.Header{}, err
	}
	s, err := d.cat.Get(ctx, snapshot)
	if err != nil {
		return sendstream.Header{}, err
	}
	h := sendstream.Header{
		Pool: catalog.PoolID(d.st.md.UUID()).String(), Snapshot: s.Name, SnapshotID: d.sendID(s),
		BlockSize: d.cfg.BlockSize, Size: s.Size,
	}
	if s.Origin != nil {
		h.Volume = s.Origin.Name
	}
	if base != "" {
		b, err := d.cat.Get(ctx, base)
		if err != nil {
			return h, err
		}
		h.Base, h.BaseID = b.Name, d.sendID(b)
	}
	if token != "" {
		t, err := sendstream.ParseToken(token)
		if err != nil {
			return h, fmt.Errorf("%w: %v", ErrBadToken, err)
		}
		switch {
		case t.SnapshotID != h.SnapshotID || t.BaseID != h.BaseID:
			return h, fmt.Errorf("%w: it resumes snapshot %s from base %q, this stream is %s from %q",
				ErrBadToken, t.SnapshotID, t.BaseID, h.SnapshotID, h.BaseID)
		case t.Offset > h.Size || t.Offset%h.BlockSize != 0 && t.Offset != h.Size:
			return h, fmt.Errorf("%w: offset %d is not a block boundary inside %d bytes", ErrBadToken, t.Offset, h.Size)
		}
		h.Start = t.Offset
	}
	return h, nil
}

// Send writes the stream h describes to w: for a full stream the mapped
// extents of the snapshot, for an incremental one the ranges where it
// differs from the base (changed as data, unmapped as zero records).
func (d *Daemon) Send(ctx context.Context, h sendstream.Header, w io.Writer) (err error) {
	began := time.Now()
	d.repl.sends.Add(1)
	d.repl.sending.Add(1)
	defer func() {
		d.repl.sending.Add(-1)
		d.repl.sendNanos.Add(int64(time.Since(began)))
		if err != nil {
			d.repl.sendsFailed.Add(1)
		}
	}()
	s, err := d.cat.Get(ctx, h.Snapshot)
	if err != nil {
		return err
	}
	if d.sendID(s) != h.SnapshotID {
		return fmt.Errorf("%s changed since the stream began: %w", h.Snapshot, catalog.ErrNotFound)
	}
	th, err := d.st.engine.OpenThin(s.DevID, s.Size)
	if err != nil {
		return err
	}
	defer th.Close()
	var ranges []thinpool.DiffExtent
	deltaStart := time.Now()
	if h.Incremental() {
		b, err := d.cat.Get(ctx, h.Base)
		if err != nil {
			return err
		}
		// Collected first, read after: reading inside the walk would
		// take the metadata lock the walk holds.
		err = d.st.engine.Diff(ctx, b.DevID, s.DevID, h.Start, h.Size, func(x thinpool.DiffExtent) error {
			ranges = append(ranges, x)
			return nil
		})
		if err != nil {
			return fmt.Errorf("delta of %s against %s: %w", h.Snapshot, h.Base, err)
		}
	} else if ranges, err = mappedRanges(ctx, th, h.Start, h.Size); err != nil {
		return err
	}
	d.repl.deltaNanos.Add(int64(time.Since(deltaStart)))
	for _, r := range ranges {
		d.repl.deltaBytes.Add(r.Len)
	}

	sw, err := sendstream.NewWriter(countingWriter{w, &d.repl.sentBytes}, h)
	if err != nil {
		return err
	}
	buf := make([]byte, sendChunk)
	for _, r := range ranges {
		if r.Unmapped {
			if err := sw.Zero(r.Off, r.Len); err != nil {
				return err
			}
			continue
		}
		for off, end := r.Off, r.Off+r.Len; off < end; {
			p := buf[:min(end-off, sendChunk)]
			if err := th.ReadAt(ctx, p, off); err != nil {
				return fmt.Errorf("reading %s at %d: %w", h.Snapshot, off, err)
			}
			if err := sw.Data(off, p); err != nil {
				return err
			}
			off += uint64(len(p))
		}
	}
	return sw.Close()
}

// mappedRanges lists the mapped extents of th in [off, end).
func mappedRanges(ctx context.Context, th *thinpool.Thin, off, end uint64) ([]thinpool.DiffExtent, error) {
	var out []thinpool.DiffExtent
	for off < end {
		exts, err := th.BlockStatus(ctx, off, end-off, 1024, nil)
		if err != nil {
			return nil, err
		}
		if len(exts) == 0 {
			return nil, fmt.Errorf("block status at %d: no extents", off)
		}
		for _, e := range exts {
			if e.Mapped {
				if k := len(out); k > 0 && out[k-1].Off+out[k-1].Len == e.Off {
					out[k-1].Len += e.Len
				} else {
					out = append(out, thinpool.DiffExtent{Off: e.Off, Len: e.Len})
				}
			}
			off = e.Off + e.Len
		}
	}
	return out, nil
}
