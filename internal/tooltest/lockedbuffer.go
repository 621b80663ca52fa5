package tooltest

import (
	"bytes"
	"sync"
)

// LockedBuffer is a bytes.Buffer safe to read while another goroutine
// writes to it: a daemon's log, or a running command's output (exec
// copies a Stderr that is not an *os.File in a goroutine of its own), that
// a test polls.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
