package sendstream

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Record is one data or zero record. Data is valid until the next call
// to Next.
type Record struct {
	Kind   byte
	Offset uint64
	Length uint64
	Data   []byte // KindData only
}

// Reader decodes a stream, checking each record's checksum before it
// returns it, and the counts and the stream checksum at the end.
type Reader struct {
	r    *bufio.Reader
	h    Header
	crc  uint32 // over everything read
	got  End
	next uint64
	done bool
	buf  []byte
}

// NewReader reads and checks the magic and the header.
func NewReader(r io.Reader) (*Reader, error) {
	sr := &Reader{r: bufio.NewReaderSize(r, 1<<16)}
	var magic [8]byte
	if err := sr.full(magic[:]); err != nil {
		return nil, err
	}
	if string(magic[:7]) != string(Magic[:7]) {
		return nil, fmt.Errorf("%w: no magic: not a thind send stream", ErrCorrupt)
	}
	if magic[7] != Version {
		return nil, fmt.Errorf("%w: version %d, this thind reads version %d", ErrVersion, magic[7], Version)
	}
	kind, payload, err := sr.record()
	if err != nil {
		return nil, err
	}
	if kind != KindHeader || len(payload) > MaxHeaderLen {
		return nil, fmt.Errorf("%w: the first record is %q of %d bytes, want a header", ErrCorrupt, kind, len(payload))
	}
	if err := json.Unmarshal(payload, &sr.h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if sr.h.Start > sr.h.Size || sr.h.BlockSize == 0 || sr.h.SnapshotID == "" {
		return nil, fmt.Errorf("%w: header: start %d, size %d, block size %d, snapshot id %q", ErrCorrupt,
			sr.h.Start, sr.h.Size, sr.h.BlockSize, sr.h.SnapshotID)
	}
	sr.next = sr.h.Start
	return sr, nil
}

// Header is the stream's header.
func (sr *Reader) Header() Header { return sr.h }

// Next returns the next record, or io.EOF once the end record has
// verified; any other error means the stream must not be trusted past
// the records already returned.
func (sr *Reader) Next() (Record, error) {
	if sr.done {
		return Record{}, io.EOF
	}
	before := sr.crc
	kind, p, err := sr.record()
	if err != nil {
		return Record{}, err
	}
	switch kind {
	case KindData:
		if len(p) <= 8 {
			return Record{}, fmt.Errorf("%w: empty data record", ErrCorrupt)
		}
		rec := Record{Kind: kind, Offset: binary.LittleEndian.Uint64(p), Length: uint64(len(p) - 8), Data: p[8:]}
		if err := sr.claim(rec); err != nil {
			return Record{}, err
		}
		sr.got.DataRecords++
		sr.got.DataBytes += rec.Length
		return rec, nil
	case KindZero:
		if len(p) != 16 {
			return Record{}, fmt.Errorf("%w: zero record of %d bytes", ErrCorrupt, len(p))
		}
		rec := Record{Kind: kind, Offset: binary.LittleEndian.Uint64(p), Length: binary.LittleEndian.Uint64(p[8:])}
		if err := sr.claim(rec); err != nil {
			return Record{}, err
		}
		sr.got.ZeroRecords++
		sr.got.ZeroBytes += rec.Length
		return rec, nil
	case KindEnd:
		if len(p) != endLen {
			return Record{}, fmt.Errorf("%w: end record of %d bytes", ErrCorrupt, len(p))
		}
		var e End
		e.DataRecords = binary.LittleEndian.Uint64(p)
		e.ZeroRecords = binary.LittleEndian.Uint64(p[8:])
		e.DataBytes = binary.LittleEndian.Uint64(p[16:])
		e.ZeroBytes = binary.LittleEndian.Uint64(p[24:])
		e.StreamCRC = binary.LittleEndian.Uint32(p[32:])
		sr.got.StreamCRC = before
		if e != sr.got {
			return Record{}, fmt.Errorf("%w: the end record says %+v, the stream held %+v", ErrCorrupt, e, sr.got)
		}
		sr.done = true
		return Record{}, io.EOF
	default:
		return Record{}, fmt.Errorf("%w: record kind %q", ErrCorrupt, kind)
	}
}

// End is what the end record verified (valid once Next returned io.EOF).
func (sr *Reader) End() End { return sr.got }

func (sr *Reader) claim(rec Record) error {
	if rec.Length == 0 || rec.Offset < sr.next || rec.Offset+rec.Length < rec.Offset || rec.Offset+rec.Length > sr.h.Size {
		return fmt.Errorf("%w: record [%d, +%d) out of order or past the end %d", ErrCorrupt, rec.Offset, rec.Length, sr.h.Size)
	}
	sr.next = rec.Offset + rec.Length
	return nil
}

// record reads one framed record and checks its crc.
func (sr *Reader) record() (byte, []byte, error) {
	var frame [frameLen]byte
	if err := sr.full(frame[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(frame[1:])
	if n > maxPayload {
		return 0, nil, fmt.Errorf("%w: a record of %d bytes, at most %d", ErrCorrupt, n, maxPayload)
	}
	if cap(sr.buf) < int(n) {
		sr.buf = make([]byte, n)
	}
	p := sr.buf[:n]
	if err := sr.full(p); err != nil {
		return 0, nil, err
	}
	var sum [crcLen]byte
	if err := sr.full(sum[:]); err != nil {
		return 0, nil, err
	}
	want := crc32.Update(crc32.Update(0, castagnoli, frame[:]), castagnoli, p)
	if got := binary.LittleEndian.Uint32(sum[:]); got != want {
		return 0, nil, fmt.Errorf("%w: record %q checksum %08x, want %08x", ErrCorrupt, frame[0], got, want)
	}
	return frame[0], p, nil
}

func (sr *Reader) full(p []byte) error {
	if _, err := io.ReadFull(sr.r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: it ends before its end record", ErrTruncated)
		}
		return err
	}
	sr.crc = crc32.Update(sr.crc, castagnoli, p)
	return nil
}
