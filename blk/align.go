package blk

import (
	"fmt"
	"unsafe"
)

// AlignedBuffer returns a zeroed buffer of n bytes whose address is a
// multiple of align, as O_DIRECT needs. align must be a power of two. Go's
// heap does not move objects, so the alignment holds for the buffer's life.
func AlignedBuffer(n, align int) ([]byte, error) {
	if n < 0 || align < 1 || align&(align-1) != 0 {
		return nil, fmt.Errorf("blk: aligned buffer of %d bytes at %d: need n >= 0 and a power-of-two alignment", n, align)
	}
	b := make([]byte, n+align)
	pad := (align - int(uintptr(unsafe.Pointer(unsafe.SliceData(b)))&uintptr(align-1))) & (align - 1)
	return b[pad : pad+n : pad+n], nil
}
