package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed reports an option body whose layout does not match its
// length. The protocol's answer is NBD_REP_ERR_INVALID; the stream stays in
// sync because the whole body was read first.
var ErrMalformed = errors.New("nbd: malformed option data")

// OptionHeader is the fixed part of an option request.
type OptionHeader struct {
	Option uint32
	Length uint32
}

// DecodeOptionHeader decodes the 16-byte option header in b.
func DecodeOptionHeader(b []byte) (OptionHeader, error) {
	if len(b) != OptionHeaderSize {
		return OptionHeader{}, fmt.Errorf("nbd: option header is %d bytes, want %d", len(b), OptionHeaderSize)
	}
	if magic := binary.BigEndian.Uint64(b[0:8]); magic != MagicOption {
		return OptionHeader{}, fmt.Errorf("%w: option magic %#016x", ErrBadMagic, magic)
	}
	return OptionHeader{
		Option: binary.BigEndian.Uint32(b[8:12]),
		Length: binary.BigEndian.Uint32(b[12:16]),
	}, nil
}

// AppendOptionHeader appends an option header.
func AppendOptionHeader(b []byte, h OptionHeader) []byte {
	b = binary.BigEndian.AppendUint64(b, MagicOption)
	b = binary.BigEndian.AppendUint32(b, h.Option)
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// InfoRequest is the body of NBD_OPT_INFO and NBD_OPT_GO: an export name
// and the info types the client asks for.
type InfoRequest struct {
	Name  string
	Infos []uint16
}

// ParseInfoRequest parses an INFO/GO body of exactly len(data) bytes:
// u32 name length, name, u16 count, count × u16.
func ParseInfoRequest(data []byte) (InfoRequest, error) {
	name, rest, err := takeString(data)
	if err != nil {
		return InfoRequest{}, err
	}
	if len(rest) < 2 {
		return InfoRequest{}, fmt.Errorf("%w: info request count missing", ErrMalformed)
	}
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) != 2*n {
		return InfoRequest{}, fmt.Errorf("%w: %d info requests in %d bytes", ErrMalformed, n, len(rest))
	}
	r := InfoRequest{Name: name}
	if n > 0 {
		r.Infos = make([]uint16, n)
		for i := range r.Infos {
			r.Infos[i] = binary.BigEndian.Uint16(rest[2*i:])
		}
	}
	return r, nil
}

// Append appends the wire form of r.
func (r InfoRequest) Append(b []byte) []byte {
	b = appendString(b, r.Name)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Infos)))
	for _, t := range r.Infos {
		b = binary.BigEndian.AppendUint16(b, t)
	}
	return b
}

// MetaContextRequest is the body of NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT.
type MetaContextRequest struct {
	Export  string
	Queries []string
}

// ParseMetaContextRequest parses u32 name length, name, u32 query count and
// the queries, each a u32 length and a string; the layout must use exactly
// len(data) bytes.
func ParseMetaContextRequest(data []byte) (MetaContextRequest, error) {
	name, rest, err := takeString(data)
	if err != nil {
		return MetaContextRequest{}, err
	}
	if len(rest) < 4 {
		return MetaContextRequest{}, fmt.Errorf("%w: query count missing", ErrMalformed)
	}
	n := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	// Each query takes at least 4 bytes, which bounds the allocation by the
	// option length the caller already capped.
	if uint64(n)*4 > uint64(len(rest)) {
		return MetaContextRequest{}, fmt.Errorf("%w: %d queries in %d bytes", ErrMalformed, n, len(rest))
	}
	r := MetaContextRequest{Export: name}
	if n > 0 {
		r.Queries = make([]string, 0, n)
	}
	for i := uint32(0); i < n; i++ {
		var q string
		q, rest, err = takeString(rest)
		if err != nil {
			return MetaContextRequest{}, err
		}
		r.Queries = append(r.Queries, q)
	}
	if len(rest) != 0 {
		return MetaContextRequest{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	return r, nil
}

// Append appends the wire form of r.
func (r MetaContextRequest) Append(b []byte) []byte {
	b = appendString(b, r.Export)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Queries)))
	for _, q := range r.Queries {
		b = appendString(b, q)
	}
	return b
}

// takeString splits a u32-length-prefixed string off data. Strings longer
// than MaxString are malformed: the spec caps every string at 4096 bytes.
func takeString(data []byte) (string, []byte, error) {
	if len(data) < 4 {
		return "", nil, fmt.Errorf("%w: string length missing", ErrMalformed)
	}
	n := binary.BigEndian.Uint32(data)
	data = data[4:]
	if n > MaxString {
		return "", nil, fmt.Errorf("%w: string of %d bytes exceeds %d", ErrMalformed, n, MaxString)
	}
	if uint64(n) > uint64(len(data)) {
		return "", nil, fmt.Errorf("%w: string of %d bytes in %d", ErrMalformed, n, len(data))
	}
	return string(data[:n]), data[n:], nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
