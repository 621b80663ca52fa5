package metatools

import (
	"fmt"

	"github.com/thind-storage/thind/bm"
)

// blockWriter hands out metadata blocks in ascending order and writes them
// in large sequential runs: an offline writer owns the whole device, so it
// needs no cache, no shadowing and no space map lookups.
type blockWriter struct {
	dev     bm.Device
	limit   uint64 // blocks available
	next    uint64 // next block to hand out
	base    uint64 // first block in buf
	buf     []byte
	written uint64
}

const writerRun = 256 // blocks per device write

func newBlockWriter(dev bm.Device, first, limit uint64) *blockWriter {
	return &blockWriter{dev: dev, limit: limit, next: first, base: first, buf: make([]byte, 0, writerRun*bm.BlockSize)}
}

// ErrMetadataFull is returned when the output device is too small.
type ErrMetadataFull struct{ Need, Have uint64 }

func (e *ErrMetadataFull) Error() string {
	return fmt.Sprintf("metadata device too small: need more than %d blocks, it has %d", e.Need, e.Have)
}

// alloc returns the next block number without writing it yet.
func (w *blockWriter) Alloc() (uint64, error) {
	if w.next >= w.limit {
		return 0, &ErrMetadataFull{Need: w.next + 1, Have: w.limit}
	}
	b := w.next
	w.next++
	return b, nil
}

// write stores data (one block, stamped by v) at block b, which must be
// the lowest block allocated and not yet written.
func (w *blockWriter) Write(b uint64, data []byte, v bm.Validator) error {
	if b != w.base+uint64(len(w.buf)/bm.BlockSize) {
		return fmt.Errorf("metadata writer: block %d written out of order (expected %d)", b, w.base+uint64(len(w.buf)/bm.BlockSize))
	}
	v.Prepare(data, b)
	w.buf = append(w.buf, data...)
	if len(w.buf) == cap(w.buf) {
		return w.flush()
	}
	return nil
}

func (w *blockWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.dev.WriteAt(w.buf, int64(w.base)*bm.BlockSize); err != nil {
		return fmt.Errorf("writing metadata blocks %d..: %w", w.base, err)
	}
	n := uint64(len(w.buf) / bm.BlockSize)
	w.written += n
	w.base += n
	w.buf = w.buf[:0]
	return nil
}
