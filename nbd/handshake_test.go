package nbd

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/pojntfx/go-nbd/pkg/protocol"
	"github.com/thind-storage/thind/nbd/internal/wire"
)

func TestOptionErrorsLeaveTheSessionUsable(t *testing.T) {
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.greet(wire.ClientFlagFixedNewstyle | wire.ClientFlagNoZeroes)

	c.expectOption(wire.OptList, []byte("junk"), wire.RepErrInvalid)
	c.expectOption(wire.OptSetMetaContext, wire.MetaContextRequest{Export: "vol0", Queries: []string{wire.MetaContextBaseAlloc}}.Append(nil), wire.RepErrInvalid)
	c.expectOption(wire.OptStructuredReply, nil, wire.RepAck)
	c.expectOption(wire.OptStructuredReply, nil, wire.RepErrInvalid)
	c.expectOption(wire.OptStructuredReply, []byte{1}, wire.RepErrInvalid)
	c.expectOption(99, bytes.Repeat([]byte{7}, 1000), wire.RepErrUnsup)
	c.expectOption(wire.OptPeekExport, nil, wire.RepErrUnsup)
	c.expectOption(wire.OptStartTLS, nil, wire.RepErrPolicy)
	c.expectOption(wire.OptStartTLS, []byte{1}, wire.RepErrInvalid)
	c.expectOption(wire.OptExtendedHeaders, []byte{1}, wire.RepErrInvalid)
	c.expectOption(wire.OptInfo, []byte{0, 0, 0, 9, 'v'}, wire.RepErrInvalid)
	c.expectOption(wire.OptInfo, append(wire.InfoRequest{Name: "vol0"}.Append(nil), 0), wire.RepErrInvalid)
	c.expectOption(wire.OptListMetaContext, []byte{0, 0, 0, 0, 0, 0, 0, 5}, wire.RepErrInvalid)
	// An unknown export gets ERR_UNKNOWN and no REP_INFO before it.
	if rs := c.expectOption(wire.OptGo, wire.InfoRequest{Name: "nope"}.Append(nil), wire.RepErrUnknown); len(rs) != 1 {
		t.Fatalf("GO for an unknown export sent %d replies", len(rs))
	}
	c.expectOption(wire.OptListMetaContext, wire.MetaContextRequest{Export: "nope"}.Append(nil), wire.RepErrUnknown)

	c.structured = true
	c.goExport("vol0")
	c.pwrite([]byte("still alive"), 0)
	if got := c.pread(0, 11); string(got) != "still alive" {
		t.Fatalf("read back %q", got)
	}
}

func TestListSendsOneServerReplyPerExport(t *testing.T) {
	a, _ := memExport("alpha", 1<<20)
	b, _ := memExport("beta", 1<<20)
	b.Description = ""
	ts := startServer(t, Options{}, a, b)
	c := dialUnix(t, ts)
	c.greet(wire.ClientFlagFixedNewstyle)
	rs := c.expectOption(wire.OptList, nil, wire.RepAck)
	if len(rs) != 3 {
		t.Fatalf("%d replies, want 2 REP_SERVER and ACK", len(rs))
	}
	for i, want := range []struct{ name, desc string }{{"alpha", "memory volume alpha"}, {"beta", ""}} {
		r := rs[i]
		n := binary.BigEndian.Uint32(r.data)
		if r.typ != wire.RepServer || int(n) != len(want.name) || string(r.data[4:4+n]) != want.name || string(r.data[4+n:]) != want.desc {
			t.Errorf("reply %d: type %#x data %q, want %s/%q", i, r.typ, r.data, want.name, want.desc)
		}
	}
}

func TestInfoReportsCanonicalNameBlockSizesAndMatchesGo(t *testing.T) {
	e, _ := memExport(DefaultExportName, 8<<20)
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.greet(wire.ClientFlagFixedNewstyle | wire.ClientFlagNoZeroes)
	c.expectOption(wire.OptStructuredReply, nil, wire.RepAck)
	c.structured = true

	req := wire.InfoRequest{Name: "", Infos: []uint16{wire.InfoName, wire.InfoDescription, 999}}.Append(nil)
	infos := c.parseInfos(c.expectOption(wire.OptInfo, req, wire.RepAck))
	infoFlags := c.flags
	if string(infos[wire.InfoName]) != DefaultExportName {
		t.Errorf("INFO_NAME %q, want the canonical %q", infos[wire.InfoName], DefaultExportName)
	}
	if string(infos[wire.InfoDescription]) != "memory volume default" {
		t.Errorf("INFO_DESCRIPTION %q", infos[wire.InfoDescription])
	}
	bs := infos[wire.InfoBlockSize]
	if min, pref, max := binary.BigEndian.Uint32(bs), binary.BigEndian.Uint32(bs[4:]), binary.BigEndian.Uint32(bs[8:]); min != 1 || pref != 4096 || max != 32<<20 {
		t.Errorf("block sizes %d/%d/%d, want 1/4096/32MiB", min, pref, max)
	}
	if c.size != 8<<20 {
		t.Errorf("size %d", c.size)
	}
	want := wire.TransHasFlags | wire.TransSendFlush | wire.TransSendFUA | wire.TransSendTrim |
		wire.TransSendWriteZeroes | wire.TransSendDF | wire.TransCanMultiConn | wire.TransSendCache | wire.TransSendFastZero
	if infoFlags != want {
		t.Errorf("flags %#04x, want %#04x", infoFlags, want)
	}
	// The same GO right after must return the same data.
	c.parseInfos(c.expectOption(wire.OptGo, req, wire.RepAck))
	if c.flags != infoFlags {
		t.Errorf("GO flags %#x differ from INFO flags %#x", c.flags, infoFlags)
	}
	c.pwrite([]byte{1, 2, 3}, 100)
}

func TestDFIsAdvertisedOnlyWithChunkedReplies(t *testing.T) {
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.greet(wire.ClientFlagFixedNewstyle)
	c.parseInfos(c.expectOption(wire.OptInfo, wire.InfoRequest{Name: "vol0"}.Append(nil), wire.RepAck))
	if c.flags&wire.TransSendDF != 0 {
		t.Errorf("SEND_DF advertised before STRUCTURED_REPLY: %#x", c.flags)
	}
	c.expectOption(wire.OptExtendedHeaders, nil, wire.RepAck)
	c.parseInfos(c.expectOption(wire.OptInfo, wire.InfoRequest{Name: "vol0"}.Append(nil), wire.RepAck))
	if c.flags&wire.TransSendDF == 0 {
		t.Errorf("SEND_DF missing after EXTENDED_HEADERS: %#x", c.flags)
	}
	c.expectOption(wire.OptStructuredReply, nil, wire.RepErrExtHeaderReqd)
	c.expectOption(wire.OptExtendedHeaders, nil, wire.RepErrInvalid)
}

func TestExportNameEntersTransmission(t *testing.T) {
	for _, tc := range []struct {
		name     string
		noZeroes bool
	}{{"with NO_ZEROES the reply is 10 bytes", true}, {"without it 124 zero bytes follow", false}} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := memExport("vol0", 1<<20)
			ts := startServer(t, Options{}, e)
			c := dialUnix(t, ts)
			flags := wire.ClientFlagFixedNewstyle
			if tc.noZeroes {
				flags |= wire.ClientFlagNoZeroes
			}
			c.greet(flags)
			c.sendOption(wire.OptExportName, []byte("vol0"))
			b := c.read(10)
			if size := binary.BigEndian.Uint64(b); size != 1<<20 {
				t.Fatalf("size %d", size)
			}
			c.size = 1 << 20
			if !tc.noZeroes {
				if pad := c.read(124); !bytes.Equal(pad, make([]byte, 124)) {
					t.Fatalf("padding %x", pad)
				}
			}
			// Simple replies only: the kernel's path.
			c.pwrite([]byte("kernel"), 4096)
			if got := c.pread(4096, 6); string(got) != "kernel" {
				t.Fatalf("read %q", got)
			}
			c.disc()
			c.expectClosed()
		})
	}
}

func TestExportNameFailuresClose(t *testing.T) {
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{}, e)
	t.Run("unknown export", func(t *testing.T) {
		c := dialUnix(t, ts)
		c.greet(wire.ClientFlagFixedNewstyle)
		c.sendOption(wire.OptExportName, []byte("nope"))
		c.expectClosed()
	})
	t.Run("after extended headers", func(t *testing.T) {
		c := dialUnix(t, ts)
		c.greet(wire.ClientFlagFixedNewstyle)
		c.expectOption(wire.OptExtendedHeaders, nil, wire.RepAck)
		c.sendOption(wire.OptExportName, []byte("vol0"))
		c.expectClosed()
	})
	st := ts.Stats()
	if st.HandshakeFailures[FailureUnknownExport] != 1 || st.HandshakeFailures[FailureProtocol] != 1 {
		t.Errorf("handshake failures %v", st.HandshakeFailures)
	}
}

func TestHandshakeViolationsClose(t *testing.T) {
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{MaxOptions: 8}, e)
	for _, tc := range []struct {
		name   string
		reason string
		run    func(c *rawClient)
	}{
		{"EOF before the client flags", FailureEOF, func(c *rawClient) {
			c.read(wire.GreetingSize)
			c.nc.(*net.UnixConn).CloseWrite()
		}},
		{"unknown client flags", FailureClientFlags, func(c *rawClient) { c.greet(0x80) }},
		{"bad option magic", FailureBadMagic, func(c *rawClient) {
			c.greet(wire.ClientFlagFixedNewstyle)
			c.write([]byte("IHAVEOPX\x00\x00\x00\x03\x00\x00\x00\x00"))
		}},
		{"option data above 1 MiB", FailureOptionTooLong, func(c *rawClient) {
			c.greet(wire.ClientFlagFixedNewstyle)
			c.write(wire.AppendOptionHeader(nil, wire.OptionHeader{Option: 99, Length: 2 << 20}))
		}},
		{"too many options", FailureTooManyOptions, func(c *rawClient) {
			c.greet(wire.ClientFlagFixedNewstyle)
			for range 8 {
				c.expectOption(99, nil, wire.RepErrUnsup)
			}
			c.sendOption(99, nil)
		}},
		{"EOF in the middle of option data", FailureEOF, func(c *rawClient) {
			c.greet(wire.ClientFlagFixedNewstyle)
			c.write(wire.AppendOptionHeader(nil, wire.OptionHeader{Option: wire.OptGo, Length: 100}))
			c.write([]byte{0, 0})
			c.nc.(*net.UnixConn).CloseWrite()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.Stats().HandshakeFailures[tc.reason]
			c := dialUnix(t, ts)
			tc.run(c)
			c.expectClosed()
			// The failure is counted before the connection is closed.
			if got := ts.Stats().HandshakeFailures[tc.reason]; got != before+1 {
				t.Errorf("%s failures %d, want %d", tc.reason, got, before+1)
			}
		})
	}
}

func TestAbortIsAcknowledged(t *testing.T) {
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.greet(wire.ClientFlagFixedNewstyle)
	c.expectOption(wire.OptAbort, []byte("ignored"), wire.RepAck)
	c.expectClosed()
	if st := ts.Stats(); len(st.HandshakeFailures) != 0 {
		t.Errorf("ABORT counted as a failure: %v", st.HandshakeFailures)
	}
}

// TestGoNBDClientNegotiation replays go-nbd v0.3.2's client handshake
// (pkg/client: Connect and negotiateNewstyle) byte for byte with its own
// wire structs, and applies its reply checks. Its Connect cannot run here:
// it issues NBD_SET_SOCK on /dev/nbdX before negotiating. The quirks: client
// flags 0, NBD_OPT_GO announced with length 0 and followed by the body, no
// info requests, and the export name "default" when none is configured.
func TestGoNBDClientNegotiation(t *testing.T) {
	e, mem := memExport(DefaultExportName, 16<<20)
	ts := startServer(t, Options{}, e)
	nc, err := net.Dial("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	var hdr protocol.NegotiationNewstyleHeader
	if err := binary.Read(nc, binary.BigEndian, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr.OldstyleMagic != protocol.NEGOTIATION_MAGIC_OLDSTYLE || hdr.OptionMagic != protocol.NEGOTIATION_MAGIC_OPTION {
		t.Fatalf("greeting %+v", hdr)
	}
	if _, err := nc.Write(make([]byte, 4)); err != nil { // client flags 0
		t.Fatal(err)
	}
	if err := binary.Write(nc, binary.BigEndian, protocol.NegotiationOptionHeader{
		OptionMagic: protocol.NEGOTIATION_MAGIC_OPTION, ID: protocol.NEGOTIATION_ID_OPTION_GO, Length: 0,
	}); err != nil {
		t.Fatal(err)
	}
	name := []byte("default")
	binary.Write(nc, binary.BigEndian, uint32(len(name)))
	nc.Write(name)
	binary.Write(nc, binary.BigEndian, uint16(0))

	var size uint64
	var blockSize uint32
	for done := false; !done; {
		var rh protocol.NegotiationReplyHeader
		if err := binary.Read(nc, binary.BigEndian, &rh); err != nil {
			t.Fatal(err)
		}
		if rh.ReplyMagic != protocol.NEGOTIATION_MAGIC_REPLY {
			t.Fatalf("reply magic %#x", rh.ReplyMagic)
		}
		switch rh.Type {
		case protocol.NEGOTIATION_TYPE_REPLY_INFO:
			raw := make([]byte, rh.Length)
			if _, err := io.ReadFull(nc, raw); err != nil {
				t.Fatal(err)
			}
			switch typ := binary.BigEndian.Uint16(raw); typ {
			case protocol.NEGOTIATION_TYPE_INFO_EXPORT:
				var info protocol.NegotiationReplyInfo
				binary.Read(bytes.NewReader(raw), binary.BigEndian, &info)
				size = info.Size
			case protocol.NEGOTIATION_TYPE_INFO_NAME, protocol.NEGOTIATION_TYPE_INFO_DESCRIPTION:
			case protocol.NEGOTIATION_TYPE_INFO_BLOCKSIZE:
				var bs protocol.NegotiationReplyBlockSize
				binary.Read(bytes.NewReader(raw), binary.BigEndian, &bs)
				blockSize = bs.PreferredBlockSize
			default:
				t.Fatalf("info type %d would fail go-nbd with ErrUnknownInfo", typ)
			}
		case protocol.NEGOTIATION_TYPE_REPLY_ACK:
			done = true
		default:
			t.Fatalf("reply type %#x would fail go-nbd with ErrUnknownReply", rh.Type)
		}
	}
	// go-nbd's checks on the block size it hands to NBD_SET_BLKSIZE.
	if blockSize < 512 || blockSize > 4096 || blockSize&(blockSize-1) != 0 {
		t.Fatalf("preferred block size %d unusable by go-nbd", blockSize)
	}
	if size != 16<<20 || size%uint64(blockSize) != 0 {
		t.Fatalf("size %d with block size %d", size, blockSize)
	}
	// The kernel then speaks simple replies on this socket.
	c := newRawClient(t, nc)
	c.size = size
	c.pwrite(bytes.Repeat([]byte{0x5a}, 4096), 8192)
	buf := make([]byte, 4096)
	mem.ReadAt(t.Context(), buf, 8192)
	if !bytes.Equal(buf, bytes.Repeat([]byte{0x5a}, 4096)) {
		t.Fatal("write through go-nbd's negotiation did not reach the backend")
	}
}

func TestMetaContextSelection(t *testing.T) {
	a, _ := memExport("a", 1<<20)
	b, _ := memExport("b", 1<<20)
	ts := startServer(t, Options{}, a, b)
	bs := wire.Request{Type: wire.CmdBlockStatus, Length: 4096}
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
	set := func(c *rawClient, export string, queries ...string) int {
		return len(c.expectOption(wire.OptSetMetaContext, wire.MetaContextRequest{Export: export, Queries: queries}.Append(nil), wire.RepAck)) - 1
	}

	t.Run("LIST matches all, base: and the exact name only", func(t *testing.T) {
		c := dialUnix(t, ts)
		c.greet(wire.ClientFlagFixedNewstyle)
		// qemu lists before STRUCTURED_REPLY; allowed.
		for _, tc := range []struct {
			queries []string
			want    int
		}{{nil, 1}, {[]string{"base:"}, 1}, {[]string{"base:allocation"}, 1}, {[]string{"qemu:dirty-bitmap:x", "base:other"}, 0}} {
			if got := list(c, tc.queries...); len(got) != tc.want || (tc.want == 1 && got[0] != "base:allocation") {
				t.Errorf("LIST %q = %q", tc.queries, got)
			}
		}
	})
	t.Run("SET with base: alone selects nothing", func(t *testing.T) {
		c := dialUnix(t, ts)
		c.greet(wire.ClientFlagFixedNewstyle)
		c.expectOption(wire.OptStructuredReply, nil, wire.RepAck)
		c.structured = true
		if n := set(c, "a", "base:"); n != 0 {
			t.Fatalf("%d contexts selected", n)
		}
		c.goExport("a")
		c.expectErrno(bs, nil, wire.EINVAL)
	})
	t.Run("a failed SET clears the selection; LIST keeps it", func(t *testing.T) {
		c := dialUnix(t, ts)
		c.greet(wire.ClientFlagFixedNewstyle)
		c.expectOption(wire.OptStructuredReply, nil, wire.RepAck)
		c.structured = true
		if n := set(c, "a", "base:allocation"); n != 1 {
			t.Fatalf("%d contexts selected", n)
		}
		c.expectOption(wire.OptSetMetaContext, wire.MetaContextRequest{Export: "missing", Queries: []string{"base:allocation"}}.Append(nil), wire.RepErrUnknown)
		c.goExport("a")
		c.expectErrno(bs, nil, wire.EINVAL)
	})
	t.Run("LIST does not change the selection", func(t *testing.T) {
		c := dialUnix(t, ts)
		c.greet(wire.ClientFlagFixedNewstyle)
		c.expectOption(wire.OptStructuredReply, nil, wire.RepAck)
		c.structured = true
		rs := c.expectOption(wire.OptSetMetaContext, wire.MetaContextRequest{Export: "a", Queries: []string{"base:allocation"}}.Append(nil), wire.RepAck)
		c.metaID = binary.BigEndian.Uint32(rs[0].data)
		list(c, "qemu:nothing")
		c.goExport("a")
		if r := c.expectErrno(bs, nil, 0); len(r.extents) != 1 {
			t.Fatalf("extents %+v", r.extents)
		}
	})
	t.Run("GO to another export drops the selection", func(t *testing.T) {
		c := dialUnix(t, ts)
		c.greet(wire.ClientFlagFixedNewstyle)
		c.expectOption(wire.OptStructuredReply, nil, wire.RepAck)
		c.structured = true
		set(c, "a", "base:allocation")
		c.goExport("b")
		c.expectErrno(bs, nil, wire.EINVAL)
	})
}

func TestShutdownAnswersNewOptionsWithErrShutdown(t *testing.T) {
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.greet(wire.ClientFlagFixedNewstyle)
	c.expectOption(wire.OptStructuredReply, nil, wire.RepAck)
	ts.cancel()
	// The listener closes, but this connection still gets answers.
	c.expectOption(wire.OptGo, wire.InfoRequest{Name: "vol0"}.Append(nil), wire.RepErrShutdown)
	c.expectOption(wire.OptList, nil, wire.RepErrShutdown)
	c.expectOption(wire.OptAbort, nil, wire.RepAck)
	c.expectClosed()
	ts.stop(t)
	if _, err := net.Dial("unix", ts.sock); err == nil {
		t.Fatal("server still accepts after shutdown")
	}
}

func TestTransmissionFlagsFollowCapabilities(t *testing.T) {
	all := Capabilities{Flush: true, FUA: true, Trim: true, Zero: true, FastZero: true, Cache: true, MultiConn: true}
	for _, tc := range []struct {
		name    string
		caps    Capabilities
		ro      bool
		chunked bool
		want    uint16
	}{
		{"everything, simple replies", all, false, false, 0x0D6D},
		{"everything, structured replies adds DF", all, false, true, 0x0DED},
		{"nothing declared", Capabilities{}, false, false, wire.TransHasFlags},
		{"flush without native FUA still offers FUA", Capabilities{Flush: true}, false, false,
			wire.TransHasFlags | wire.TransSendFlush | wire.TransSendFUA},
		{"fast zero needs zero", Capabilities{FastZero: true}, false, false, wire.TransHasFlags},
		{"no multi-conn without the backend's guarantee", Capabilities{Flush: true, Trim: true}, false, false,
			wire.TransHasFlags | wire.TransSendFlush | wire.TransSendFUA | wire.TransSendTrim},
		{"a read-only export drops the write-side flags", all, true, false,
			wire.TransHasFlags | wire.TransReadOnly | wire.TransSendFlush | wire.TransSendCache | wire.TransCanMultiConn},
		{"a read-only backend too", Capabilities{ReadOnly: true, Trim: true}, false, false,
			wire.TransHasFlags | wire.TransReadOnly},
	} {
		got := transmissionFlags(&Export{ReadOnly: tc.ro}, tc.caps, tc.chunked)
		if got != tc.want {
			t.Errorf("%s: flags %#04x, want %#04x", tc.name, got, tc.want)
		}
	}
}

func TestInvalidBlockSizesAreRefusedAtGo(t *testing.T) {
	e, _ := memExport("odd", 1<<20)
	e.Backend = &hookBackend{Backend: e.Backend, caps: func(c Capabilities) Capabilities {
		c.PreferredBlockSize = 8192 // go-nbd's client would reject it
		return c
	}}
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.greet(wire.ClientFlagFixedNewstyle)
	c.expectOption(wire.OptGo, wire.InfoRequest{Name: "odd"}.Append(nil), wire.RepErrPlatform)
	c.expectOption(wire.OptAbort, nil, wire.RepAck)
}
