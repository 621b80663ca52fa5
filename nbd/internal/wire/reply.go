package wire

import (
	"encoding/binary"
	"fmt"
)

// OptionReplyHeader is the fixed part of an option reply.
type OptionReplyHeader struct {
	Option uint32
	Type   uint32
	Length uint32
}

// AppendOptionReply appends an option reply header.
func AppendOptionReply(b []byte, h OptionReplyHeader) []byte {
	b = binary.BigEndian.AppendUint64(b, MagicOptionReply)
	b = binary.BigEndian.AppendUint32(b, h.Option)
	b = binary.BigEndian.AppendUint32(b, h.Type)
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// DecodeOptionReply decodes a 20-byte option reply header.
func DecodeOptionReply(b []byte) (OptionReplyHeader, error) {
	if len(b) != OptionReplyHeaderSize {
		return OptionReplyHeader{}, fmt.Errorf("nbd: option reply header is %d bytes", len(b))
	}
	if m := binary.BigEndian.Uint64(b); m != MagicOptionReply {
		return OptionReplyHeader{}, fmt.Errorf("%w: option reply magic %#016x", ErrBadMagic, m)
	}
	return OptionReplyHeader{
		Option: binary.BigEndian.Uint32(b[8:]),
		Type:   binary.BigEndian.Uint32(b[12:]),
		Length: binary.BigEndian.Uint32(b[16:]),
	}, nil
}

// AppendSimpleReply appends a 16-byte simple reply header.
func AppendSimpleReply(b []byte, errno uint32, cookie uint64) []byte {
	b = binary.BigEndian.AppendUint32(b, MagicSimpleReply)
	b = binary.BigEndian.AppendUint32(b, errno)
	return binary.BigEndian.AppendUint64(b, cookie)
}

// Chunk is a structured (20-byte) or extended (32-byte) reply chunk header.
// Offset is only on the wire for extended chunks, where it echoes the
// request's offset.
type Chunk struct {
	Flags  uint16
	Type   uint16
	Cookie uint64
	Offset uint64
	Length uint64
}

// ChunkHeaderSize is the chunk header size for the negotiated style.
func ChunkHeaderSize(extended bool) int {
	if extended {
		return ExtendedReplySize
	}
	return StructuredReplySize
}

// AppendChunk appends a chunk header. In structured style Length must fit
// in 32 bits, which every payload the server builds does.
func AppendChunk(b []byte, c Chunk, extended bool) []byte {
	if extended {
		b = binary.BigEndian.AppendUint32(b, MagicExtendedReply)
	} else {
		b = binary.BigEndian.AppendUint32(b, MagicStructuredReply)
	}
	b = binary.BigEndian.AppendUint16(b, c.Flags)
	b = binary.BigEndian.AppendUint16(b, c.Type)
	b = binary.BigEndian.AppendUint64(b, c.Cookie)
	if extended {
		b = binary.BigEndian.AppendUint64(b, c.Offset)
		return binary.BigEndian.AppendUint64(b, c.Length)
	}
	return binary.BigEndian.AppendUint32(b, uint32(c.Length))
}

// DecodeChunk decodes a chunk header whose style is given by its magic,
// which must be the structured or extended reply magic. b holds at least the
// header; the size used is returned.
func DecodeChunk(b []byte) (Chunk, int, error) {
	if len(b) < 4 {
		return Chunk{}, 0, fmt.Errorf("nbd: short chunk header")
	}
	switch m := binary.BigEndian.Uint32(b); m {
	case MagicStructuredReply:
		if len(b) < StructuredReplySize {
			return Chunk{}, 0, fmt.Errorf("nbd: short structured chunk header")
		}
		return Chunk{
			Flags:  binary.BigEndian.Uint16(b[4:]),
			Type:   binary.BigEndian.Uint16(b[6:]),
			Cookie: binary.BigEndian.Uint64(b[8:]),
			Length: uint64(binary.BigEndian.Uint32(b[16:])),
		}, StructuredReplySize, nil
	case MagicExtendedReply:
		if len(b) < ExtendedReplySize {
			return Chunk{}, 0, fmt.Errorf("nbd: short extended chunk header")
		}
		return Chunk{
			Flags:  binary.BigEndian.Uint16(b[4:]),
			Type:   binary.BigEndian.Uint16(b[6:]),
			Cookie: binary.BigEndian.Uint64(b[8:]),
			Offset: binary.BigEndian.Uint64(b[16:]),
			Length: binary.BigEndian.Uint64(b[24:]),
		}, ExtendedReplySize, nil
	default:
		return Chunk{}, 0, fmt.Errorf("%w: reply magic %#08x", ErrBadMagic, m)
	}
}
