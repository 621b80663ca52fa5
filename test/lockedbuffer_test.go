package test

import (
	"bytes"
	"sync"
)

// lockedBuffer is a bytes.Buffer safe to read while a running command's
// output copier writes to it: exec copies a non-*os.File Stderr in its own
// goroutine, so a test polling the output needs the lock.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
