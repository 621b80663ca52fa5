package blk

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTryReadServesOnlyWhatIsCached reads a buffered file's bytes through
// TryRead while the page cache holds them, and is refused once the cache
// has dropped them (posix_fadvise DONTNEED after a flush): nothing waits
// for the device. The normal read then still returns the bytes, a direct
// file never serves one, and a cached read allocates nothing.
func TestTryReadServesOnlyWhatIsCached(t *testing.T) {
	const size = 1 << 20
	d, path := newTestDispatcher(t, size, Config{}, FileOptions{})
	ctx := t.Context()
	data := pattern(size, 3)
	if err := d.Write(ctx, data, 0, false); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	ok, err := d.TryRead(got, 8192)
	if err != nil || !ok || !bytes.Equal(got, data[8192:8192+4096]) {
		t.Fatalf("TryRead of cached bytes: ok %v, err %v, equal %v", ok, err, bytes.Equal(got, data[8192:8192+4096]))
	}
	if n := testing.AllocsPerRun(100, func() { d.TryRead(got, 8192) }); n != 0 {
		t.Errorf("TryRead allocates %v times per call", n)
	}
	if _, err := d.TryRead(got, size); err == nil {
		t.Error("TryRead past the end: no error")
	}

	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Fadvise(fd, 0, size, unix.FADV_DONTNEED)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	ok, err = d.TryRead(got, 512<<10)
	switch {
	case err != nil:
		t.Fatalf("TryRead of dropped bytes: %v", err)
	case ok && st.Type != unix.TMPFS_MAGIC:
		t.Error("TryRead served bytes the page cache had dropped")
	}
	if err := d.Read(ctx, got, 512<<10); err != nil || !bytes.Equal(got, data[512<<10:512<<10+4096]) {
		t.Fatalf("read after a refused TryRead: %v", err)
	}

	direct, _ := newTestDispatcher(t, size, Config{}, FileOptions{Direct: true})
	buf, err := AlignedBuffer(4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := direct.TryRead(buf, 0); ok || err != nil {
		t.Errorf("TryRead on a direct file: ok %v, err %v; want a refusal", ok, err)
	}
}
