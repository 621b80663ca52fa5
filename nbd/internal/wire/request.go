package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrBadMagic reports a request or option whose magic is not the one the
// negotiated header style requires. The protocol's answer is a hard
// disconnect, because the stream can no longer be framed.
var ErrBadMagic = errors.New("nbd: bad magic")

// Request is a decoded transmission request header, compact or extended.
// For a compact header Length holds the 32-bit length field.
type Request struct {
	Flags  uint16
	Type   uint16
	Cookie uint64
	Offset uint64
	Length uint64
}

// RequestHeaderSize is the header size for the negotiated style.
func RequestHeaderSize(extended bool) int {
	if extended {
		return ExtendedRequestSize
	}
	return RequestSize
}

// DecodeRequest decodes a request header. b must hold exactly
// RequestHeaderSize(extended) bytes. A compact header in extended mode, or
// the reverse, is a bad magic: the spec treats the style as fixed once
// negotiated.
func DecodeRequest(b []byte, extended bool) (Request, error) {
	if len(b) != RequestHeaderSize(extended) {
		return Request{}, fmt.Errorf("nbd: request header is %d bytes, want %d", len(b), RequestHeaderSize(extended))
	}
	magic := binary.BigEndian.Uint32(b[0:4])
	want := MagicRequest
	if extended {
		want = MagicExtendedRequest
	}
	if magic != want {
		return Request{}, fmt.Errorf("%w: request magic %#08x, want %#08x", ErrBadMagic, magic, want)
	}
	r := Request{
		Flags:  binary.BigEndian.Uint16(b[4:6]),
		Type:   binary.BigEndian.Uint16(b[6:8]),
		Cookie: binary.BigEndian.Uint64(b[8:16]),
		Offset: binary.BigEndian.Uint64(b[16:24]),
	}
	if extended {
		r.Length = binary.BigEndian.Uint64(b[24:32])
	} else {
		r.Length = uint64(binary.BigEndian.Uint32(b[24:28]))
	}
	return r, nil
}

// AppendRequest appends the header of r in the given style. In compact style
// Length must fit in 32 bits; the caller owns that invariant.
func AppendRequest(b []byte, r Request, extended bool) []byte {
	if extended {
		b = binary.BigEndian.AppendUint32(b, MagicExtendedRequest)
	} else {
		b = binary.BigEndian.AppendUint32(b, MagicRequest)
	}
	b = binary.BigEndian.AppendUint16(b, r.Flags)
	b = binary.BigEndian.AppendUint16(b, r.Type)
	b = binary.BigEndian.AppendUint64(b, r.Cookie)
	b = binary.BigEndian.AppendUint64(b, r.Offset)
	if extended {
		return binary.BigEndian.AppendUint64(b, r.Length)
	}
	return binary.BigEndian.AppendUint32(b, uint32(r.Length))
}

// PayloadLength is the number of payload bytes that follow the header of r
// on the wire. With compact headers only WRITE carries a payload; with
// extended headers exactly the requests flagged PAYLOAD_LEN do, except that a
// WRITE without the flag is tolerated as qemu does (its length is still the
// payload length, since a write without data makes no sense).
func (r Request) PayloadLength(extended bool) uint64 {
	if !extended {
		if r.Type == CmdWrite {
			return r.Length
		}
		return 0
	}
	if r.Flags&CmdFlagPayloadLen != 0 || r.Type == CmdWrite {
		return r.Length
	}
	return 0
}

// CommandName names a command type for logs and statistics.
func CommandName(t uint16) string {
	switch t {
	case CmdRead:
		return "read"
	case CmdWrite:
		return "write"
	case CmdDisc:
		return "disc"
	case CmdFlush:
		return "flush"
	case CmdTrim:
		return "trim"
	case CmdCache:
		return "cache"
	case CmdWriteZeroes:
		return "write_zeroes"
	case CmdBlockStatus:
		return "block_status"
	case CmdResize:
		return "resize"
	}
	return "unknown"
}
