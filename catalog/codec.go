package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The values are a compact binary encoding: a version byte, then fields
// as unsigned varints and length-prefixed strings. Decoding is strict so
// that every value that decodes has exactly one encoding: varints must be
// minimal, strings within their limits, nothing may trail. That makes
// round-trip fuzzing meaningful (decode, encode, compare bytes).
//
// There is no checksum: pebble already checksums its WAL chunks and
// sstable blocks, so a value reaches the decoder only as it was written or
// as a bug wrote it; the decoder's job is to catch the latter.

var errTrailing = errors.New("trailing bytes")

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads fields in order and keeps the first error, so that a
// record's decode function reads as its layout.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("offset %d: %s", d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("%s: truncated", field)
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

// uvarint reads a minimal unsigned varint no larger than max.
func (d *decoder) uvarint(field string, max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	switch {
	case n == 0:
		d.fail("%s: truncated", field)
		return 0
	case n < 0:
		d.fail("%s: varint overflows 64 bits", field)
		return 0
	case n != uvarintLen(v):
		d.fail("%s: varint is not minimal", field)
		return 0
	case v > max:
		d.fail("%s: %d exceeds %d", field, v, max)
		return 0
	}
	d.off += n
	return v
}

// varint reads a minimal zig-zag signed varint.
func (d *decoder) varint(field string) int64 {
	u := d.uvarint(field, ^uint64(0))
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

func (d *decoder) string(field string, max int) string {
	n := d.uvarint(field+" length", uint64(max))
	if d.err != nil {
		return ""
	}
	if uint64(len(d.b)-d.off) < n {
		d.fail("%s: %d bytes, only %d left", field, n, len(d.b)-d.off)
		return ""
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s
}

// check records err (from a validator) against field.
func (d *decoder) check(field string, err error) {
	if err != nil {
		d.fail("%s: %v", field, err)
	}
}

// finish returns the first error, or errTrailing if bytes are left over.
func (d *decoder) finish() error {
	if d.err == nil && d.off != len(d.b) {
		d.err = fmt.Errorf("offset %d: %w (%d)", d.off, errTrailing, len(d.b)-d.off)
	}
	return d.err
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func appendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }
