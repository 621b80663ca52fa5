package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// bitmapBackend is a memory export with fixed dirty bitmaps, each a list
// of extents covering the whole export.
type bitmapBackend struct {
	*Memory
	names []string
	maps  map[string][]Extent
}

func (b *bitmapBackend) Bitmaps(context.Context) ([]string, error) { return b.names, nil }

func (b *bitmapBackend) DirtyStatus(_ context.Context, name string, off, length int64, maxExt int, dst []Extent) ([]Extent, error) {
	exts, ok := b.maps[name]
	if !ok {
		return dst, errors.New("no such bitmap")
	}
	var pos int64
	for _, e := range exts {
		end := pos + e.Length
		if end > off && len(dst) < maxExt {
			dst = append(dst, Extent{Length: end - max(pos, off), Flags: e.Flags})
		}
		pos = end
	}
	return dst, nil
}

func bitmapExport() *Export {
	const size = 1 << 20
	m := NewMemory(size, MemoryOptions{})
	b := &bitmapBackend{Memory: m, names: []string{"snap1", "snap2"}, maps: map[string][]Extent{
		"snap1": {{Length: 4096, Flags: ExtentDirty}, {Length: size - 4096}},
		"snap2": {{Length: 8192}, {Length: 65536, Flags: ExtentDirty}, {Length: size - 8192 - 65536}},
	}}
	return &Export{Name: "a", Backend: b}
}

// TestDirtyBitmapContexts lists and selects qemu:dirty-bitmap: contexts as
// qemu answers the queries, and serves them beside base:allocation, one
// status chunk each, compact and extended, with and without REQ_ONE.
func TestDirtyBitmapContexts(t *testing.T) {
	ts := startServer(t, Options{}, bitmapExport())
	list := func(c *rawClient, queries ...string) []string {
		var names []string
		for _, r := range c.expectOption(wire.OptListMetaContext, wire.MetaContextRequest{Export: "a", Queries: queries}.Append(nil), wire.RepAck) {
			if r.typ == wire.RepMetaContext {
				if id := binary.BigEndian.Uint32(r.data); id != 0 {
					t.Errorf("LIST reply with context id %d", id)
				}
				names = append(names, string(r.data[4:]))
			}
		}
		return names
	}
	t.Run("LIST answers prefix queries as qemu does", func(t *testing.T) {
		c := dialUnix(t, ts)
		c.greet(wire.ClientFlagFixedNewstyle)
		all := []string{"base:allocation", "qemu:dirty-bitmap:snap1", "qemu:dirty-bitmap:snap2"}
		for _, tc := range []struct {
			queries []string
			want    []string
		}{
			{nil, all},
			{[]string{"qemu:"}, all[1:]},
			{[]string{"qemu:dirty-bitmap:"}, all[1:]},
			{[]string{"qemu:dirty-bitmap:snap2"}, all[2:]},
			{[]string{"qemu:dirty-bitmap:nope", "qemu:allocation-depth", "qemu:dirty-bitmap:snap"}, nil},
			{[]string{"base:"}, all[:1]},
			{[]string{"qemu:dirty-bitmap:snap2", "base:allocation", "qemu:dirty-bitmap:snap2"}, []string{all[0], all[2]}},
		} {
			if got := list(c, tc.queries...); !slices.Equal(got, tc.want) {
				t.Errorf("LIST %q: %q, want %q", tc.queries, got, tc.want)
			}
		}
	})
	t.Run("SET selects only full names", func(t *testing.T) {
		c := dialUnix(t, ts)
		c.greet(wire.ClientFlagFixedNewstyle)
		c.expectOption(wire.OptStructuredReply, nil, wire.RepAck)
		c.structured = true
		for _, q := range []string{"qemu:", "qemu:dirty-bitmap:", "base:"} {
			if rs := c.expectOption(wire.OptSetMetaContext, wire.MetaContextRequest{Export: "a", Queries: []string{q}}.Append(nil), wire.RepAck); len(rs) != 1 {
				t.Errorf("SET %q selected %d contexts", q, len(rs)-1)
			}
		}
	})
	for _, extended := range []bool{false, true} {
		for _, reqOne := range []bool{false, true} {
			name := "structured"
			if extended {
				name = "extended"
			}
			if reqOne {
				name += " REQ_ONE"
			}
			t.Run(name, func(t *testing.T) {
				c := dialUnix(t, ts)
				c.greet(wire.ClientFlagFixedNewstyle | wire.ClientFlagNoZeroes)
				if extended {
					c.expectOption(wire.OptExtendedHeaders, nil, wire.RepAck)
					c.extended = true
				} else {
					c.expectOption(wire.OptStructuredReply, nil, wire.RepAck)
					c.structured = true
				}
				q := wire.MetaContextRequest{Export: "a", Queries: []string{"qemu:dirty-bitmap:snap2", "base:allocation", "qemu:dirty-bitmap:snap1"}}
				rs := c.expectOption(wire.OptSetMetaContext, q.Append(nil), wire.RepAck)
				c.metaIDs = map[uint32]string{}
				for _, r := range rs[:len(rs)-1] {
					id, n := binary.BigEndian.Uint32(r.data), string(r.data[4:])
					if n == wire.MetaContextBaseAlloc {
						c.metaID = id
					} else {
						c.metaIDs[id] = n
					}
				}
				if c.metaID == 0 || len(c.metaIDs) != 2 {
					t.Fatalf("SET replies %+v", rs)
				}
				c.goExport("a")
				req := wire.Request{Type: wire.CmdBlockStatus, Offset: 4096, Length: 128 << 10}
				if reqOne {
					req.Flags = wire.CmdFlagReqOne
				}
				r := c.expectErrno(req, nil, 0)
				if len(r.ctxIDs) != 3 {
					t.Fatalf("%d status chunks, want 3", len(r.ctxIDs))
				}
				want := map[string][]Extent{
					"qemu:dirty-bitmap:snap1": {{Length: 1<<20 - 4096}},
					"qemu:dirty-bitmap:snap2": {{Length: 4096}, {Length: 65536, Flags: ExtentDirty}, {Length: 1<<20 - 8192 - 65536}}, // the last may run past the request
				}
				if reqOne {
					want["qemu:dirty-bitmap:snap1"] = []Extent{{Length: 128 << 10}}
					want["qemu:dirty-bitmap:snap2"] = want["qemu:dirty-bitmap:snap2"][:1]
				}
				for id, n := range c.metaIDs {
					if got := r.byCtx[id]; !slices.Equal(got, want[n]) {
						t.Errorf("%s: %+v, want %+v", n, got, want[n])
					}
				}
				if got := r.byCtx[c.metaID]; len(got) == 0 || got[0].Flags != ExtentHole|ExtentZero {
					t.Errorf("base:allocation: %+v", got)
				}
			})
		}
	}
}
