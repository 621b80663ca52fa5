package wire

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzRequest decodes arbitrary request headers in both styles. Whatever
// decodes must re-encode to the same bytes; whatever does not must be an
// error, never a panic.
func FuzzRequest(f *testing.F) {
	for _, ext := range []bool{false, true} {
		f.Add(AppendRequest(nil, Request{Type: CmdRead, Cookie: 1, Offset: 4096, Length: 4096}, ext), ext)
		f.Add(AppendRequest(nil, Request{Type: CmdWrite, Flags: CmdFlagFUA, Cookie: 0xdeadbeef00000007, Offset: 1 << 40, Length: 1 << 20}, ext), ext)
		f.Add(AppendRequest(nil, Request{Type: CmdBlockStatus, Flags: CmdFlagReqOne, Cookie: ^uint64(0), Offset: ^uint64(0), Length: 0xffffffff}, ext), ext)
		f.Add(AppendRequest(nil, Request{Type: CmdWriteZeroes, Flags: CmdFlagNoHole | CmdFlagFastZero}, ext), ext)
	}
	f.Add([]byte{0x12, 0x56, 0x09, 0x53, 0, 0, 0, 0}, false) // the reserved old magic, short
	f.Add(bytes.Repeat([]byte{0xff}, RequestSize), false)
	f.Fuzz(func(t *testing.T, b []byte, ext bool) {
		r, err := DecodeRequest(b, ext)
		if err != nil {
			if len(b) == RequestHeaderSize(ext) && !errors.Is(err, ErrBadMagic) {
				t.Fatalf("full-size header failed with %v, want a bad magic", err)
			}
			return
		}
		if got := AppendRequest(nil, r, ext); !bytes.Equal(got, b) {
			t.Fatalf("round trip:\n got %x\nwant %x", got, b)
		}
		if !ext && r.Length > 0xffffffff {
			t.Fatalf("compact length %d exceeds 32 bits", r.Length)
		}
		if p := r.PayloadLength(ext); p != 0 && p != r.Length {
			t.Fatalf("payload length %d is neither 0 nor the length %d", p, r.Length)
		}
	})
}

// FuzzOptionHeader decodes arbitrary option headers.
func FuzzOptionHeader(f *testing.F) {
	f.Add(AppendOptionHeader(nil, OptionHeader{Option: OptGo, Length: 10}))
	f.Add(AppendOptionHeader(nil, OptionHeader{Option: 99, Length: 0xffffffff}))
	f.Add([]byte("IHAVEOPT\x00\x00\x00\x07"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeOptionHeader(b)
		if err != nil {
			return
		}
		if got := AppendOptionHeader(nil, h); !bytes.Equal(got, b) {
			t.Fatalf("round trip:\n got %x\nwant %x", got, b)
		}
	})
}

// FuzzInfoRequest parses arbitrary INFO/GO bodies. A body that parses must
// re-encode byte for byte, because the parser demands that the layout use
// the whole option length.
func FuzzInfoRequest(f *testing.F) {
	f.Add(InfoRequest{Name: "vol0", Infos: []uint16{InfoBlockSize, InfoName}}.Append(nil))
	f.Add(InfoRequest{}.Append(nil))
	f.Add(InfoRequest{Name: "default"}.Append(nil)) // go-nbd's body
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0})
	f.Add([]byte{0, 0, 0, 1, 'x', 0, 2, 0, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseInfoRequest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if got := r.Append(nil); !bytes.Equal(got, b) {
			t.Fatalf("round trip:\n got %x\nwant %x", got, b)
		}
	})
}

// FuzzMetaContextRequest parses arbitrary LIST/SET_META_CONTEXT bodies.
func FuzzMetaContextRequest(f *testing.F) {
	f.Add(MetaContextRequest{Export: "vol0", Queries: []string{MetaContextBaseAlloc}}.Append(nil))
	f.Add(MetaContextRequest{Queries: []string{MetaContextBaseNS, "qemu:dirty-bitmap:b0", "x-thind:"}}.Append(nil))
	f.Add(MetaContextRequest{}.Append(nil))
	f.Add([]byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseMetaContextRequest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if got := r.Append(nil); !bytes.Equal(got, b) {
			t.Fatalf("round trip:\n got %x\nwant %x", got, b)
		}
	})
}

// FuzzChunk decodes arbitrary reply chunk headers (the test client's side).
func FuzzChunk(f *testing.F) {
	f.Add(AppendChunk(nil, Chunk{Flags: ReplyFlagDone, Type: ReplyTypeOffsetData, Cookie: 9, Length: 4104}, false))
	f.Add(AppendChunk(nil, Chunk{Flags: ReplyFlagDone, Type: ReplyTypeBlockStatusExt, Cookie: 9, Offset: 1 << 33, Length: 24}, true))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, n, err := DecodeChunk(b)
		if err != nil {
			return
		}
		if got := AppendChunk(nil, c, n == ExtendedReplySize); !bytes.Equal(got, b[:n]) {
			t.Fatalf("round trip:\n got %x\nwant %x", got, b[:n])
		}
	})
}
