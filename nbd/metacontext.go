package nbd

import (
	"encoding/binary"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// baseAllocationID is the context id of base:allocation in this server's
// SET_META_CONTEXT replies. Ids are opaque to clients and per connection;
// with one context a constant is unique. LIST replies use id 0.
const baseAllocationID = 1

// metaSelection is the outcome of the last NBD_OPT_SET_META_CONTEXT: the
// canonical name of the export it was for, and whether base:allocation was
// selected. BLOCK_STATUS is allowed only if it names the export in use.
type metaSelection struct {
	export    string
	baseAlloc bool
}

// matchBaseAllocation reports whether queries select base:allocation. A
// LIST with no queries lists everything and "base:" lists the whole base
// namespace; for SET, only the exact name selects. Unknown namespaces and
// names are ignored, as the protocol requires.
func matchBaseAllocation(queries []string, list bool) bool {
	if list && len(queries) == 0 {
		return true
	}
	for _, q := range queries {
		if q == wire.MetaContextBaseAlloc || (list && q == wire.MetaContextBaseNS) {
			return true
		}
	}
	return false
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
	s.release(e)

	if matchBaseAllocation(req.Queries, !set) {
		var id [4]byte
		if set {
			binary.BigEndian.PutUint32(id[:], baseAllocationID)
			s.meta.baseAlloc = true
		}
		s.reply(opt, wire.RepMetaContext, id[:], []byte(wire.MetaContextBaseAlloc))
	}
	if set {
		s.meta.export = name
	}
	s.reply(opt, wire.RepAck)
}
