package nbd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// rawClient is a strict NBD client for tests: it sends whatever bytes a
// test asks for, including malformed ones, and checks every reply it
// parses against the protocol's rules (magic, cookie, chunk layout, DONE
// last, no overlapping or out-of-range content), failing the test on any
// violation. It is not safe for concurrent use.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader

	structured bool
	extended   bool
	size       uint64
	flags      uint16
	metaID     uint32            // base:allocation's id
	metaIDs    map[uint32]string // further selected contexts by id
	pending    map[uint64]wire.Request
	cookie     uint64
}

func dialUnix(t testing.TB, ts *testServer) *rawClient {
	t.Helper()
	nc, err := net.Dial("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	return newRawClient(t, nc)
}

func newRawClient(t testing.TB, nc net.Conn) *rawClient {
	c := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc), pending: make(map[uint64]wire.Request)}
	// A hung server must fail the test, not hang it.
	nc.SetDeadline(time.Now().Add(time.Minute))
	t.Cleanup(func() { nc.Close() })
	return c
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawClient) read(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		c.t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// greet reads the greeting, checks it and sends the client flags.
func (c *rawClient) greet(clientFlags uint32) {
	c.t.Helper()
	g := c.read(wire.GreetingSize)
	if binary.BigEndian.Uint64(g) != wire.MagicInitPasswd || binary.BigEndian.Uint64(g[8:]) != wire.MagicOption {
		c.t.Fatalf("bad greeting %x", g)
	}
	if f := binary.BigEndian.Uint16(g[16:]); f != wire.FlagFixedNewstyle|wire.FlagNoZeroes {
		c.t.Fatalf("handshake flags %#x, want FIXED_NEWSTYLE|NO_ZEROES", f)
	}
	c.write(binary.BigEndian.AppendUint32(nil, clientFlags))
}

// optReply is one option reply.
type optReply struct {
	typ  uint32
	data []byte
}

func (c *rawClient) sendOption(opt uint32, data []byte) {
	c.t.Helper()
	b := wire.AppendOptionHeader(nil, wire.OptionHeader{Option: opt, Length: uint32(len(data))})
	c.write(append(b, data...))
}

func (c *rawClient) readOptReply(opt uint32) optReply {
	c.t.Helper()
	h, err := wire.DecodeOptionReply(c.read(wire.OptionReplyHeaderSize))
	if err != nil {
		c.t.Fatal(err)
	}
	if h.Option != opt {
		c.t.Fatalf("reply for option %d, want %d", h.Option, opt)
	}
	return optReply{typ: h.Type, data: c.read(int(h.Length))}
}

// option sends an option and collects its replies up to the final ACK or
// error (the last element).
func (c *rawClient) option(opt uint32, data []byte) []optReply {
	c.t.Helper()
	c.sendOption(opt, data)
	var out []optReply
	for {
		r := c.readOptReply(opt)
		out = append(out, r)
		if r.typ == wire.RepAck || r.typ&wire.RepErrorBit != 0 {
			return out
		}
	}
}

// expectOption sends an option and checks the final reply type.
func (c *rawClient) expectOption(opt uint32, data []byte, want uint32) []optReply {
	c.t.Helper()
	rs := c.option(opt, data)
	if got := rs[len(rs)-1].typ; got != want {
		c.t.Fatalf("option %d: final reply %#x (%q), want %#x", opt, got, rs[len(rs)-1].data, want)
	}
	return rs
}

// negotiate does a typical modern handshake: fixed newstyle, structured
// replies or extended headers, base:allocation, then GO.
func (c *rawClient) negotiate(export string, structured, extended, meta bool) {
	c.t.Helper()
	c.greet(wire.ClientFlagFixedNewstyle | wire.ClientFlagNoZeroes)
	// Structured replies first: after extended headers they are refused.
	if structured {
		c.expectOption(wire.OptStructuredReply, nil, wire.RepAck)
		c.structured = true
	}
	if extended {
		c.expectOption(wire.OptExtendedHeaders, nil, wire.RepAck)
		c.extended = true
	}
	if meta {
		q := wire.MetaContextRequest{Export: export, Queries: []string{wire.MetaContextBaseAlloc}}.Append(nil)
		rs := c.expectOption(wire.OptSetMetaContext, q, wire.RepAck)
		if len(rs) != 2 || rs[0].typ != wire.RepMetaContext || string(rs[0].data[4:]) != wire.MetaContextBaseAlloc {
			c.t.Fatalf("SET_META_CONTEXT replies %+v", rs)
		}
		c.metaID = binary.BigEndian.Uint32(rs[0].data)
	}
	c.goExport(export)
}

// goExport sends GO and records the size and flags from INFO_EXPORT.
func (c *rawClient) goExport(name string) []optReply {
	c.t.Helper()
	rs := c.expectOption(wire.OptGo, wire.InfoRequest{Name: name, Infos: []uint16{wire.InfoBlockSize}}.Append(nil), wire.RepAck)
	c.parseInfos(rs)
	return rs
}

// parseInfos checks REP_INFO replies (each type at most once, EXPORT and
// BLOCK_SIZE present) and records the export's size and flags.
func (c *rawClient) parseInfos(rs []optReply) map[uint16][]byte {
	c.t.Helper()
	infos := make(map[uint16][]byte)
	for _, r := range rs[:len(rs)-1] {
		if r.typ != wire.RepInfo {
			c.t.Fatalf("reply type %#x among INFO replies", r.typ)
		}
		typ := binary.BigEndian.Uint16(r.data)
		if _, dup := infos[typ]; dup {
			c.t.Fatalf("info %d sent twice", typ)
		}
		infos[typ] = r.data[2:]
	}
	e, ok := infos[wire.InfoExport]
	if !ok || len(e) != 10 {
		c.t.Fatalf("INFO_EXPORT missing or malformed: %x", e)
	}
	c.size = binary.BigEndian.Uint64(e)
	c.flags = binary.BigEndian.Uint16(e[8:])
	if c.flags&wire.TransHasFlags == 0 {
		c.t.Fatalf("transmission flags %#x without HAS_FLAGS", c.flags)
	}
	if bs, ok := infos[wire.InfoBlockSize]; !ok || len(bs) != 12 {
		c.t.Fatalf("INFO_BLOCK_SIZE missing or malformed: %x", bs)
	}
	return infos
}

// send sends a request (compact or extended as negotiated) with payload.
// The cookie is chosen if zero; it is returned.
func (c *rawClient) send(r wire.Request, payload []byte) uint64 {
	c.t.Helper()
	if r.Cookie == 0 {
		c.cookie++
		r.Cookie = c.cookie<<32 | 0xc0ffee
	}
	b := wire.AppendRequest(nil, r, c.extended)
	c.write(append(b, payload...))
	c.pending[r.Cookie] = r
	return r.Cookie
}

// reply is a complete reply as the client assembled it.
type reply struct {
	cookie  uint64
	simple  bool
	errno   uint32
	msg     string
	data    []byte // READ: the assembled data, holes as zeros
	holes   int    // READ: hole chunks
	dataN   int    // READ: data chunks
	extents []Extent
	ctxIDs  []uint32
	byCtx   map[uint32][]Extent // BLOCK_STATUS: each context's extents
	types   []uint16
}

// recv reads replies until one request completes and returns it.
func (c *rawClient) recv() reply {
	c.t.Helper()
	partial := make(map[uint64]*reply)
	for {
		magic := binary.BigEndian.Uint32(c.peek(4))
		if magic == wire.MagicSimpleReply {
			return c.recvSimple()
		}
		done, r := c.recvChunk(partial)
		if done {
			return *r
		}
	}
}

func (c *rawClient) peek(n int) []byte {
	c.t.Helper()
	b, err := c.br.Peek(n)
	if err != nil {
		c.t.Fatalf("reading reply: %v", err)
	}
	return b
}

func (c *rawClient) recvSimple() reply {
	c.t.Helper()
	if c.extended {
		c.t.Fatal("simple reply with extended headers")
	}
	h := c.read(wire.SimpleReplySize)
	r := reply{simple: true, errno: binary.BigEndian.Uint32(h[4:]), cookie: binary.BigEndian.Uint64(h[8:])}
	req, ok := c.pending[r.cookie]
	if !ok {
		c.t.Fatalf("simple reply for unknown cookie %#x", r.cookie)
	}
	delete(c.pending, r.cookie)
	if req.Type == wire.CmdRead && c.structured {
		c.t.Fatal("simple reply to READ after structured replies were negotiated")
	}
	if req.Type == wire.CmdRead && r.errno == 0 {
		r.data = c.read(int(req.Length))
	}
	return r
}

// recvChunk reads one chunk, checking it against its request. It returns
// true with the reply when the chunk carries DONE.
func (c *rawClient) recvChunk(partial map[uint64]*reply) (bool, *reply) {
	c.t.Helper()
	hsize := wire.ChunkHeaderSize(c.extended)
	ch, _, err := wire.DecodeChunk(c.read(hsize))
	if err != nil {
		c.t.Fatal(err)
	}
	if (hsize == wire.ExtendedReplySize) != c.extended {
		c.t.Fatal("chunk style does not match the negotiation")
	}
	if !c.structured && !c.extended {
		c.t.Fatal("chunk without structured replies")
	}
	req, ok := c.pending[ch.Cookie]
	if !ok {
		c.t.Fatalf("chunk for unknown cookie %#x", ch.Cookie)
	}
	if c.extended && ch.Offset != req.Offset {
		c.t.Fatalf("extended chunk offset %d, request offset %d", ch.Offset, req.Offset)
	}
	if ch.Length > 64<<20 {
		c.t.Fatalf("chunk payload of %d bytes", ch.Length)
	}
	p := c.read(int(ch.Length))
	r := partial[ch.Cookie]
	if r == nil {
		r = &reply{cookie: ch.Cookie}
		if req.Type == wire.CmdRead {
			r.data = make([]byte, req.Length)
		}
		partial[ch.Cookie] = r
	}
	r.types = append(r.types, ch.Type)
	c.checkChunk(req, ch, p, r)
	if ch.Flags&wire.ReplyFlagDone == 0 {
		if ch.Type == wire.ReplyTypeNone {
			c.t.Fatal("NONE chunk without DONE")
		}
		return false, nil
	}
	delete(c.pending, ch.Cookie)
	delete(partial, ch.Cookie)
	return true, r
}

// checkChunk validates one chunk's payload and folds it into r.
func (c *rawClient) checkChunk(req wire.Request, ch wire.Chunk, p []byte, r *reply) {
	c.t.Helper()
	inRange := func(off, n uint64) {
		if n == 0 || off < req.Offset || off-req.Offset > req.Length || n > req.Length-(off-req.Offset) {
			c.t.Fatalf("content chunk %d+%d outside request %d+%d", off, n, req.Offset, req.Length)
		}
	}
	switch ch.Type {
	case wire.ReplyTypeNone:
		if len(p) != 0 {
			c.t.Fatal("NONE chunk with payload")
		}
	case wire.ReplyTypeOffsetData:
		if req.Type != wire.CmdRead || len(p) < 9 {
			c.t.Fatalf("OFFSET_DATA of %d bytes for command %d", len(p), req.Type)
		}
		off := binary.BigEndian.Uint64(p)
		inRange(off, uint64(len(p)-8))
		copy(r.data[off-req.Offset:], p[8:])
		r.dataN++
	case wire.ReplyTypeOffsetHole:
		if req.Type != wire.CmdRead || len(p) != 12 {
			c.t.Fatalf("OFFSET_HOLE of %d bytes for command %d", len(p), req.Type)
		}
		if req.Flags&wire.CmdFlagDF != 0 {
			c.t.Fatal("hole chunk in a DF read")
		}
		off := binary.BigEndian.Uint64(p)
		inRange(off, uint64(binary.BigEndian.Uint32(p[8:])))
		r.holes++
	case wire.ReplyTypeBlockStatus, wire.ReplyTypeBlockStatusExt:
		c.checkStatus(req, ch, p, r)
	case wire.ReplyTypeError, wire.ReplyTypeErrorOffset:
		if len(p) < 6 {
			c.t.Fatalf("error chunk of %d bytes", len(p))
		}
		r.errno = binary.BigEndian.Uint32(p)
		n := int(binary.BigEndian.Uint16(p[4:]))
		if r.errno == 0 || 6+n > len(p) {
			c.t.Fatalf("error chunk errno %d message length %d in %d bytes", r.errno, n, len(p))
		}
		r.msg = string(p[6 : 6+n])
	default:
		c.t.Fatalf("unknown chunk type %#x", ch.Type)
	}
}

// checkStatus checks a block status chunk against the protocol's extent
// rules and records the extents.
func (c *rawClient) checkStatus(req wire.Request, ch wire.Chunk, p []byte, r *reply) {
	c.t.Helper()
	if req.Type != wire.CmdBlockStatus {
		c.t.Fatal("status chunk for another command")
	}
	if (ch.Type == wire.ReplyTypeBlockStatusExt) != c.extended {
		c.t.Fatal("status chunk style does not match the negotiation")
	}
	var ids uint32
	var ext []Extent
	if c.extended {
		if len(p) < 24 || (len(p)-8)%16 != 0 {
			c.t.Fatalf("BLOCK_STATUS_EXT of %d bytes", len(p))
		}
		ids = binary.BigEndian.Uint32(p)
		n := binary.BigEndian.Uint32(p[4:])
		if int(n) != (len(p)-8)/16 {
			c.t.Fatalf("descriptor count %d for %d bytes", n, len(p))
		}
		for i := 8; i < len(p); i += 16 {
			f := binary.BigEndian.Uint64(p[i+8:])
			if f>>32 != 0 {
				c.t.Fatalf("base:allocation status %#x uses the upper 32 bits", f)
			}
			ext = append(ext, Extent{Length: int64(binary.BigEndian.Uint64(p[i:])), Flags: ExtentFlags(f)})
		}
	} else {
		if len(p) < 12 || (len(p)-4)%8 != 0 {
			c.t.Fatalf("BLOCK_STATUS of %d bytes", len(p))
		}
		ids = binary.BigEndian.Uint32(p)
		for i := 4; i < len(p); i += 8 {
			ext = append(ext, Extent{Length: int64(binary.BigEndian.Uint32(p[i:])), Flags: ExtentFlags(binary.BigEndian.Uint32(p[i+4:]))})
		}
	}
	if _, ok := c.metaIDs[ids]; ids != c.metaID && !ok {
		c.t.Fatalf("status for context %d, selected %d and %v", ids, c.metaID, c.metaIDs)
	}
	if slices.Contains(r.ctxIDs, ids) {
		c.t.Fatalf("two status chunks for context %d", ids)
	}
	var sum uint64
	for i, e := range ext {
		if e.Length <= 0 {
			c.t.Fatalf("extent %d has length %d", i, e.Length)
		}
		if i > 0 && sum >= req.Length {
			c.t.Fatalf("extents continue past the request: %+v", ext)
		}
		sum += uint64(e.Length)
	}
	if req.Offset+sum > c.size {
		c.t.Fatalf("extents run past the export: %d+%d > %d", req.Offset, sum, c.size)
	}
	if req.Flags&wire.CmdFlagReqOne != 0 && (len(ext) != 1 || uint64(ext[0].Length) > req.Length) {
		c.t.Fatalf("REQ_ONE answered with %+v", ext)
	}
	r.ctxIDs = append(r.ctxIDs, ids)
	r.extents = append(r.extents, ext...)
	if r.byCtx == nil {
		r.byCtx = map[uint32][]Extent{}
	}
	r.byCtx[ids] = ext
}

// do sends a request and waits for its reply (no other request pending).
func (c *rawClient) do(r wire.Request, payload []byte) reply {
	c.t.Helper()
	cookie := c.send(r, payload)
	rep := c.recv()
	if rep.cookie != cookie {
		c.t.Fatalf("reply cookie %#x, want %#x", rep.cookie, cookie)
	}
	return rep
}

// expectErrno runs a request and checks its error value.
func (c *rawClient) expectErrno(r wire.Request, payload []byte, want uint32) reply {
	c.t.Helper()
	rep := c.do(r, payload)
	if rep.errno != want {
		c.t.Fatalf("%s flags %#x offset %d length %d: errno %s (%q), want %s",
			wire.CommandName(r.Type), r.Flags, r.Offset, r.Length, errnoName(rep.errno), rep.msg, errnoName(want))
	}
	return rep
}

func (c *rawClient) pread(off, n uint64) []byte {
	c.t.Helper()
	return c.expectErrno(wire.Request{Type: wire.CmdRead, Offset: off, Length: n}, nil, 0).data
}

func (c *rawClient) pwrite(p []byte, off uint64) {
	c.t.Helper()
	r := wire.Request{Type: wire.CmdWrite, Offset: off, Length: uint64(len(p))}
	if c.extended {
		r.Flags |= wire.CmdFlagPayloadLen
	}
	c.expectErrno(r, p, 0)
}

// disc sends NBD_CMD_DISC.
func (c *rawClient) disc() {
	c.t.Helper()
	c.write(wire.AppendRequest(nil, wire.Request{Type: wire.CmdDisc}, c.extended))
}

// expectClosed checks that the server closed the connection: the next
// read returns EOF (or a reset) without more data.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	b, err := io.ReadAll(c.br)
	if err != nil && !isConnReset(err) {
		c.t.Fatalf("waiting for close: %v (after %x)", err, b)
	}
	if len(b) != 0 {
		c.t.Fatalf("server sent %x instead of closing", b)
	}
}

func isConnReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// String for failure messages.
func (r reply) String() string {
	return fmt.Sprintf("cookie %#x errno %s msg %q chunks %v", r.cookie, errnoName(r.errno), r.msg, r.types)
}
