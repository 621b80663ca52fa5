package blk

import "errors"

// copyChunk bounds the buffer of a copy through memory.
const copyChunk = 1 << 20

// copyRange carries out an OpCopy: on the backend where it copies by
// itself, else through one of the dispatcher's buffers. It is the one
// place that decides how a copy is made.
func (d *Dispatcher) copyRange(src, dst, n int64) error {
	if d.cp != nil && !d.noCopy.Load() {
		err := d.cp.CopyRange(src, dst, n)
		if !errors.Is(err, ErrNotSupported) {
			return err
		}
		// Not on this store (a file system without clone or
		// copy_file_range support): one failed call, not one per copy.
		d.noCopy.Store(true)
	}
	bp, err := d.copyBuffer()
	if err != nil {
		return err
	}
	defer d.copyBufs.Put(bp)
	buf := *bp
	for done := int64(0); done < n; {
		k := min(int64(len(buf)), n-done)
		if err := readFull(d.be, buf[:k], src+done); err != nil {
			return err
		}
		m, err := d.be.WriteAt(buf[:k], dst+done)
		if err := transferred(m, k, err); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// copyBuffer returns a buffer for a copy through memory, aligned for
// O_DIRECT backends.
func (d *Dispatcher) copyBuffer() (*[]byte, error) {
	if bp, ok := d.copyBufs.Get().(*[]byte); ok {
		return bp, nil
	}
	b, err := AlignedBuffer(copyChunk, int(d.memAlign))
	if err != nil {
		return nil, err
	}
	return &b, nil
}
