package sendstream

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
)

// Writer encodes a stream. Records must come in offset order, each at or
// after the end of the one before, from the header's Start.
type Writer struct {
	w    io.Writer
	h    Header
	crc  uint32 // over everything written
	end  End
	next uint64 // where the next record may start
	buf  []byte
}

// NewWriter writes the magic and h.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	js, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if len(js) > MaxHeaderLen {
		return nil, fmt.Errorf("send stream header of %d bytes, at most %d", len(js), MaxHeaderLen)
	}
	sw := &Writer{w: w, h: h, next: h.Start}
	if err := sw.write(Magic[:]); err != nil {
		return nil, err
	}
	return sw, sw.record(KindHeader, js)
}

// Data writes p at offset off, split into records of at most MaxDataLen.
func (sw *Writer) Data(off uint64, p []byte) error {
	for len(p) > 0 {
		n := min(len(p), MaxDataLen)
		if err := sw.claim(off, uint64(n)); err != nil {
			return err
		}
		payload := binary.LittleEndian.AppendUint64(sw.buf[:0], off)
		payload = append(payload, p[:n]...)
		sw.buf = payload
		if err := sw.record(KindData, payload); err != nil {
			return err
		}
		sw.end.DataRecords++
		sw.end.DataBytes += uint64(n)
		off, p = off+uint64(n), p[n:]
	}
	return nil
}

// Zero writes a zero record: [off, off+n) reads as zeroes.
func (sw *Writer) Zero(off, n uint64) error {
	if err := sw.claim(off, n); err != nil {
		return err
	}
	var payload [16]byte
	binary.LittleEndian.PutUint64(payload[:], off)
	binary.LittleEndian.PutUint64(payload[8:], n)
	if err := sw.record(KindZero, payload[:]); err != nil {
		return err
	}
	sw.end.ZeroRecords++
	sw.end.ZeroBytes += n
	return nil
}

// Close writes the end record (it does not close the io.Writer).
func (sw *Writer) Close() error {
	sw.end.StreamCRC = sw.crc
	return sw.record(KindEnd, sw.end.append(nil))
}

func (sw *Writer) claim(off, n uint64) error {
	if n == 0 || off < sw.next || off+n < off || off+n > sw.h.Size {
		return fmt.Errorf("send stream: record [%d, +%d) out of order or past the end %d", off, n, sw.h.Size)
	}
	sw.next = off + n
	return nil
}

func (sw *Writer) record(kind byte, payload []byte) error {
	var frame [frameLen]byte
	frame[0] = kind
	binary.LittleEndian.PutUint32(frame[1:], uint32(len(payload)))
	crc := crc32.Update(crc32.Update(0, castagnoli, frame[:]), castagnoli, payload)
	if err := sw.write(frame[:]); err != nil {
		return err
	}
	if err := sw.write(payload); err != nil {
		return err
	}
	return sw.write(binary.LittleEndian.AppendUint32(nil, crc))
}

func (sw *Writer) write(p []byte) error {
	sw.crc = crc32.Update(sw.crc, castagnoli, p)
	_, err := sw.w.Write(p)
	return err
}

func (e End) append(b []byte) []byte {
	for _, v := range []uint64{e.DataRecords, e.ZeroRecords, e.DataBytes, e.ZeroBytes} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return binary.LittleEndian.AppendUint32(b, e.StreamCRC)
}
