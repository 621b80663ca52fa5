package faultdev

// DataStore is what a Backend wraps: a data device (blk.Backend has these
// methods).
type DataStore interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Discard(off, length int64) error
	WriteZeroes(off, length int64) error
	Flush() error
	Size() (int64, error)
	Close() error
}

// Backend is a data device that fails what its rules match and can lose
// power, as Device does for a metadata device. Discard and WriteZeroes
// change the device like writes: a cut puts back what they replaced. It
// implements blk.Backend only: the dispatcher issues one call per
// request, and the engine, told of no holes, zeroes every new block.
type Backend struct {
	*Device
	data DataStore
}

// NewBackend wraps a data device; seed drives the rules' probabilities.
func NewBackend(inner DataStore, seed uint64) *Backend {
	return &Backend{Device: New(dataSync{inner}, seed), data: inner}
}

// dataSync gives a data device the Store shape.
type dataSync struct{ DataStore }

func (s dataSync) Sync() error { return s.Flush() }

// Discard implements blk.Backend.
func (b *Backend) Discard(off, length int64) error {
	_, err := b.change(OpDiscard, off, length, func() (int, error) { return 0, b.data.Discard(off, length) })
	return err
}

// WriteZeroes implements blk.Backend.
func (b *Backend) WriteZeroes(off, length int64) error {
	_, err := b.change(OpWriteZeroes, off, length, func() (int, error) { return 0, b.data.WriteZeroes(off, length) })
	return err
}

// Flush implements blk.Backend.
func (b *Backend) Flush() error { return b.Sync() }

// Size implements blk.Backend.
func (b *Backend) Size() (int64, error) { return b.data.Size() }

// Close implements blk.Backend. A closed backend's unflushed writes are
// left as they are, as a clean shutdown leaves them to the page cache.
func (b *Backend) Close() error { return b.data.Close() }
