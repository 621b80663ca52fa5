package nbd

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// fuzzSession builds a client byte stream: client flags, options, then
// requests in the given header style.
type fuzzSession struct{ b []byte }

func (s *fuzzSession) flags(f uint32) *fuzzSession {
	s.b = binary.BigEndian.AppendUint32(s.b, f)
	return s
}

func (s *fuzzSession) option(opt uint32, data []byte) *fuzzSession {
	s.b = wire.AppendOptionHeader(s.b, wire.OptionHeader{Option: opt, Length: uint32(len(data))})
	s.b = append(s.b, data...)
	return s
}

func (s *fuzzSession) request(r wire.Request, ext bool, payload []byte) *fuzzSession {
	s.b = wire.AppendRequest(s.b, r, ext)
	s.b = append(s.b, payload...)
	return s
}

// FuzzServerInput feeds arbitrary client bytes to a server connection. The
// server must neither panic nor hang: once the client's input ends it must
// finish the connection. Seeds are real sessions (modern, kernel-style,
// extended, go-nbd's) that the fuzzer mutates.
func FuzzServerInput(f *testing.F) {
	fixed := wire.ClientFlagFixedNewstyle | wire.ClientFlagNoZeroes
	goVol := wire.InfoRequest{Name: "vol0", Infos: []uint16{wire.InfoBlockSize}}.Append(nil)
	meta := wire.MetaContextRequest{Export: "vol0", Queries: []string{wire.MetaContextBaseAlloc}}.Append(nil)
	f.Add(new(fuzzSession).flags(fixed).
		option(wire.OptStructuredReply, nil).option(wire.OptSetMetaContext, meta).option(wire.OptGo, goVol).
		request(wire.Request{Type: wire.CmdWrite, Cookie: 1, Offset: 512, Length: 4}, false, []byte("data")).
		request(wire.Request{Type: wire.CmdRead, Cookie: 2, Length: 70000}, false, nil).
		request(wire.Request{Type: wire.CmdBlockStatus, Cookie: 3, Length: 1 << 20}, false, nil).
		request(wire.Request{Type: wire.CmdWriteZeroes, Flags: wire.CmdFlagFastZero, Cookie: 4, Length: 8192}, false, nil).
		request(wire.Request{Type: wire.CmdDisc}, false, nil).b)
	f.Add(new(fuzzSession).flags(fixed).option(wire.OptExportName, []byte("vol0")).
		request(wire.Request{Type: wire.CmdTrim, Length: 4096}, false, nil).
		request(wire.Request{Type: wire.CmdFlush}, false, nil).b)
	f.Add(new(fuzzSession).flags(fixed).option(wire.OptExtendedHeaders, nil).option(wire.OptSetMetaContext, meta).option(wire.OptGo, goVol).
		request(wire.Request{Type: wire.CmdWrite, Flags: wire.CmdFlagPayloadLen, Cookie: 1, Length: 3}, true, []byte("ext")).
		request(wire.Request{Type: wire.CmdBlockStatus, Flags: wire.CmdFlagReqOne, Cookie: 2, Length: 1 << 40}, true, nil).
		request(wire.Request{Type: wire.CmdCache, Flags: wire.CmdFlagPayloadLen, Cookie: 3, Length: 2}, true, []byte("xx")).b)
	// go-nbd: flags 0, a 0-length GO followed by its body.
	f.Add(new(fuzzSession).flags(0).option(wire.OptGo, nil).b)
	f.Add(append(new(fuzzSession).flags(0).option(wire.OptGo, nil).b, wire.InfoRequest{Name: "default"}.Append(nil)...))
	f.Add(new(fuzzSession).flags(fixed).option(wire.OptList, nil).option(wire.OptListMetaContext, wire.MetaContextRequest{}.Append(nil)).
		option(wire.OptStartTLS, nil).option(99, []byte("x")).option(wire.OptAbort, nil).b)
	f.Add([]byte{0, 0, 0, 3, 'I', 'H', 'A', 'V'})
	// Dirty bitmaps beside base:allocation, on an export that has them.
	bitmaps := wire.MetaContextRequest{Export: "a", Queries: []string{"qemu:dirty-bitmap:snap2", wire.MetaContextBaseAlloc, "qemu:dirty-bitmap:snap1"}}.Append(nil)
	f.Add(new(fuzzSession).flags(fixed).option(wire.OptListMetaContext, wire.MetaContextRequest{Export: "a", Queries: []string{"qemu:"}}.Append(nil)).
		option(wire.OptStructuredReply, nil).option(wire.OptSetMetaContext, bitmaps).
		option(wire.OptGo, wire.InfoRequest{Name: "a"}.Append(nil)).
		request(wire.Request{Type: wire.CmdBlockStatus, Cookie: 1, Offset: 4096, Length: 1 << 17}, false, nil).
		request(wire.Request{Type: wire.CmdBlockStatus, Flags: wire.CmdFlagReqOne, Cookie: 2, Length: 1 << 20}, false, nil).b)

	e, _ := memExport("vol0", 1<<20)
	srv, err := NewServer(NewMapExports(e, bitmapExport()), Options{Logger: nopLogger(), MaxInFlight: 4, Workers: 2, HandshakeTimeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		served := make(chan struct{})
		go func() {
			srv.ServeConn(t.Context(), server)
			close(served)
		}()
		drained := make(chan struct{})
		go func() {
			io.Copy(io.Discard, client)
			close(drained)
		}()
		// The server may stop reading early (a violation closes the
		// connection): a failed write is expected then.
		client.SetWriteDeadline(time.Now().Add(10 * time.Second))
		client.Write(in)
		client.Close()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatal("server did not finish the connection after the input ended")
		}
		<-drained
	})
}
