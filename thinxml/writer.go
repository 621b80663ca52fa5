package thinxml

import (
	"fmt"
	"io"
	"strconv"

	"github.com/thind-storage/thind/metastream"
)

// Writer prints a document exactly as thin_dump 0.9.0 does: no XML
// declaration, two spaces of indentation per level, attributes in
// thin_dump's order, one element per line, every line ending in "\n".
//
// A Writer is an Emitter. The caller feeds mappings in ascending origin
// order, one block at a time or as runs; the Writer joins a mapping to the
// run before it while its origin and data block both continue that run and
// its time is the same (thin-provisioning-tools metadata_dumper.cc), and
// prints a run of one as <single_mapping> and a longer one as
// <range_mapping>. A run never spans devices. Order is not checked: a
// mapping that does not continue the run just starts a new one, as in
// thin_dump.
//
// Output is buffered; EndSuperblock flushes it. After the first error
// (from the io.Writer or a misuse) every call returns that error.
type Writer struct {
	out   io.Writer
	buf   []byte
	state writerState
	run   metastream.Mapping // pending run, valid if inRun
	inRun bool
	err   error
}

type writerState uint8

const (
	writerStart writerState = iota
	writerSuperblock
	writerDevice
	writerDone
)

const (
	writeBufSize = 64 << 10
	// flushAt leaves room for one mapping line (< 150 bytes) so the hot
	// path checks the buffer once per line.
	flushAt = writeBufSize - 256
)

// NewWriter returns a Writer printing to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{out: w, buf: make([]byte, 0, writeBufSize)}
}

// BeginSuperblock prints the <superblock> line. metadata_snap is printed,
// after nr_data_blocks as thin-provisioning-tools' emitter does, only when
// sb.MetadataSnap is not 0; thin_dump itself never prints it.
func (w *Writer) BeginSuperblock(sb metastream.Superblock) error {
	if err := w.expect(writerStart, "BeginSuperblock"); err != nil {
		return err
	}
	if bad := badText([]byte(sb.UUID)); bad >= 0 {
		return w.fail(fmt.Errorf("%w: uuid %q: byte %d is not an XML character", ErrInvalidValue, sb.UUID, bad))
	}
	b := append(w.buf, `<superblock uuid="`...)
	b = appendAttrValue(b, sb.UUID)
	b = append(b, `" time="`...)
	b = strconv.AppendUint(b, uint64(sb.Time), 10)
	b = append(b, `" transaction="`...)
	b = strconv.AppendUint(b, sb.Transaction, 10)
	b = append(b, `" flags="`...)
	b = strconv.AppendUint(b, uint64(sb.Flags), 10)
	b = append(b, `" version="`...)
	b = strconv.AppendUint(b, uint64(sb.Version), 10)
	b = append(b, `" data_block_size="`...)
	b = strconv.AppendUint(b, uint64(sb.DataBlockSize), 10)
	b = append(b, `" nr_data_blocks="`...)
	b = strconv.AppendUint(b, sb.NrDataBlocks, 10)
	if sb.MetadataSnap != 0 {
		b = append(b, `" metadata_snap="`...)
		b = strconv.AppendUint(b, sb.MetadataSnap, 10)
	}
	w.buf = append(b, "\">\n"...)
	w.state = writerSuperblock
	return w.maybeFlush()
}

// EndSuperblock prints </superblock> and flushes everything to the
// io.Writer.
func (w *Writer) EndSuperblock() error {
	if err := w.expect(writerSuperblock, "EndSuperblock"); err != nil {
		return err
	}
	w.buf = append(w.buf, "</superblock>\n"...)
	w.state = writerDone
	return w.flush()
}

// BeginDevice prints the <device> line.
func (w *Writer) BeginDevice(d metastream.Device) error {
	if err := w.expect(writerSuperblock, "BeginDevice"); err != nil {
		return err
	}
	b := append(w.buf, `  <device dev_id="`...)
	b = strconv.AppendUint(b, uint64(d.DevID), 10)
	b = append(b, `" mapped_blocks="`...)
	b = strconv.AppendUint(b, d.MappedBlocks, 10)
	b = append(b, `" transaction="`...)
	b = strconv.AppendUint(b, d.Transaction, 10)
	b = append(b, `" creation_time="`...)
	b = strconv.AppendUint(b, uint64(d.CreationTime), 10)
	b = append(b, `" snap_time="`...)
	b = strconv.AppendUint(b, uint64(d.SnapTime), 10)
	w.buf = append(b, "\">\n"...)
	w.state = writerDevice
	return w.maybeFlush()
}

// EndDevice prints the device's last run and </device>. A device without
// mappings prints its open and close tags on consecutive lines.
func (w *Writer) EndDevice() error {
	if err := w.expect(writerDevice, "EndDevice"); err != nil {
		return err
	}
	w.endRun()
	w.buf = append(w.buf, "  </device>\n"...)
	w.state = writerSuperblock
	return w.maybeFlush()
}

// Map adds a mapping run (Len 1 for a single block) to the current device.
func (w *Writer) Map(m metastream.Mapping) error {
	if w.state != writerDevice || w.err != nil {
		return w.expect(writerDevice, "Map")
	}
	if why := m.Invalid(); why != "" {
		return w.fail(fmt.Errorf("%w: mapping %+v: %s", ErrInvalidValue, m, why))
	}
	if w.inRun && w.continues(m) {
		w.run.Len += m.Len
		return nil
	}
	w.endRun()
	w.run, w.inRun = m, true
	return w.maybeFlush()
}

// continues reports whether m carries on the pending run. The differences
// are taken so that a run ending at the last 64-bit block cannot wrap to
// origin 0, and the sum of lengths is checked so a run never reaches 2^64.
func (w *Writer) continues(m metastream.Mapping) bool {
	r := &w.run
	return m.Time == r.Time &&
		m.Origin > r.Origin && m.Origin-r.Origin == r.Len &&
		m.Data > r.Data && m.Data-r.Data == r.Len &&
		r.Len+m.Len > r.Len
}

// endRun appends the pending run, if any, as one line.
func (w *Writer) endRun() {
	if !w.inRun {
		return
	}
	w.inRun = false
	r := &w.run
	b := w.buf
	if r.Len == 1 {
		b = append(b, `    <single_mapping origin_block="`...)
		b = strconv.AppendUint(b, r.Origin, 10)
		b = append(b, `" data_block="`...)
		b = strconv.AppendUint(b, r.Data, 10)
	} else {
		b = append(b, `    <range_mapping origin_begin="`...)
		b = strconv.AppendUint(b, r.Origin, 10)
		b = append(b, `" data_begin="`...)
		b = strconv.AppendUint(b, r.Data, 10)
		b = append(b, `" length="`...)
		b = strconv.AppendUint(b, r.Len, 10)
	}
	b = append(b, `" time="`...)
	b = strconv.AppendUint(b, uint64(r.Time), 10)
	w.buf = append(b, "\"/>\n"...)
}

// Flush writes buffered output to the io.Writer. EndSuperblock flushes by
// itself; Flush is for a walker that fails part way and, like thin_dump,
// leaves the partial document behind (thin_dump closes the device it
// failed in, so call EndDevice first to match its output).
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	return w.flush()
}

func (w *Writer) expect(s writerState, call string) error {
	if w.err != nil {
		return w.err
	}
	if w.state != s {
		return w.fail(fmt.Errorf("%w: %s %s", ErrSequence, call, w.state.where()))
	}
	return nil
}

func (s writerState) where() string {
	switch s {
	case writerStart:
		return "before BeginSuperblock"
	case writerSuperblock:
		return "in the superblock, outside any device"
	case writerDevice:
		return "inside a device"
	}
	return "after EndSuperblock"
}

func (w *Writer) fail(err error) error {
	w.err = err
	return err
}

func (w *Writer) maybeFlush() error {
	if len(w.buf) < flushAt {
		return nil
	}
	return w.flush()
}

func (w *Writer) flush() error {
	_, err := w.out.Write(w.buf)
	w.buf = w.buf[:0]
	if err != nil {
		return w.fail(fmt.Errorf("thinxml: write: %w", err))
	}
	return nil
}
