package nbd

import (
	"encoding/binary"
	"strings"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// Meta context ids in this server's SET_META_CONTEXT replies. Ids are
// opaque to clients and per connection: base:allocation has 1, the
// selected dirty bitmaps firstBitmapID on, in the order they were
// offered. LIST replies use id 0.
const (
	baseAllocationID = 1
	firstBitmapID    = 2
)

// metaSelection is the outcome of the last NBD_OPT_SET_META_CONTEXT: the
// canonical name of the export it was for and the contexts selected.
// BLOCK_STATUS is allowed only if it names the export in use.
type metaSelection struct {
	export    string
	baseAlloc bool
	bitmaps   []string // qemu:dirty-bitmap: names, ids firstBitmapID on
}

// metaContext is one selected context of a transmission.
type metaContext struct {
	id     uint32
	bitmap string // "" for base:allocation
}

// contexts lists the selection's contexts in id order.
func (m metaSelection) contexts() []metaContext {
	var cs []metaContext
	if m.baseAlloc {
		cs = append(cs, metaContext{id: baseAllocationID})
	}
	for i, b := range m.bitmaps {
		cs = append(cs, metaContext{id: firstBitmapID + uint32(i), bitmap: b})
	}
	return cs
}

// matchContexts returns what queries select among base:allocation and
// the dirty bitmaps, as qemu answers them (nbd/server.c,
// nbd_meta_base_query and nbd_meta_qemu_query). A LIST with no queries
// lists everything, and a namespace alone ("base:", "qemu:",
// "qemu:dirty-bitmap:") lists all of it; for SET only full names select.
// Unknown namespaces and names are ignored, as the protocol requires.
func matchContexts(queries []string, list bool, bitmaps []string) (baseAlloc bool, selected []string) {
	want := map[string]bool{}
	all := list && len(queries) == 0
	for _, q := range queries {
		switch {
		case q == wire.MetaContextBaseAlloc || (list && q == wire.MetaContextBaseNS):
			baseAlloc = true
		case list && (q == wire.MetaContextQemuNS || q == wire.MetaContextDirtyBitmap):
			all = true
		case strings.HasPrefix(q, wire.MetaContextDirtyBitmap):
			want[strings.TrimPrefix(q, wire.MetaContextDirtyBitmap)] = true
		}
	}
	if list && len(queries) == 0 {
		baseAlloc = true
	}
	for _, b := range bitmaps {
		if all || want[b] {
			selected = append(selected, b)
		}
	}
	return baseAlloc, selected
}

// optMetaContext answers NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT. SET replaces the selection even when it fails,
// so the selection is cleared first; LIST never changes it.
func (s *session) optMetaContext(opt uint32) {
	set := opt == wire.OptSetMetaContext
	if set {
		s.meta = metaSelection{}
	}
	req, err := wire.ParseMetaContextRequest(s.data)
	if err != nil {
		s.replyErr(opt, wire.RepErrInvalid, err.Error())
		return
	}
	// qemu lists contexts before STRUCTURED_REPLY too; selecting them is
	// pointless without chunked replies, so SET is refused (the spec's
	// SHOULD).
	if set && !s.structured && !s.extended {
		s.replyErr(opt, wire.RepErrInvalid, "negotiate structured replies or extended headers first")
		return
	}
	e, rep, msg, _ := s.lookup(req.Export)
	if rep != 0 {
		s.replyErr(opt, rep, msg)
		return
	}
	name := e.Name
	var bitmaps []string
	if db, ok := e.Backend.(DirtyBitmaps); ok {
		bitmaps, err = db.Bitmaps(s.ctx)
	}
	s.release(e)
	if err != nil {
		s.replyErr(opt, wire.RepErrUnknown, "listing dirty bitmaps: "+err.Error())
		return
	}

	baseAlloc, selected := matchContexts(req.Queries, !set, bitmaps)
	sel := metaSelection{export: name, baseAlloc: baseAlloc, bitmaps: selected}
	for _, c := range sel.contexts() {
		var id [4]byte
		if set {
			binary.BigEndian.PutUint32(id[:], c.id)
		}
		ctxName := wire.MetaContextBaseAlloc
		if c.bitmap != "" {
			ctxName = wire.MetaContextDirtyBitmap + c.bitmap
		}
		s.reply(opt, wire.RepMetaContext, id[:], []byte(ctxName))
	}
	if set {
		s.meta = sel
	}
	s.reply(opt, wire.RepAck)
}
