package blk

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestBlockRangeArgumentEncoding(t *testing.T) {
	var rangeErr *RangeError
	var alignErr *AlignmentError
	tests := []struct {
		name   string
		off, n int64
		sector int
		want   [2]uint64
		errAs  any
	}{
		{"whole sectors encode as start and length in bytes", 4096, 8192, 512, [2]uint64{4096, 8192}, nil},
		{"a 4K-sector device takes 4K multiples", 1 << 30, 1 << 20, 4096, [2]uint64{1 << 30, 1 << 20}, nil},
		{"offsets above 4 GiB keep their high bits", 5 << 40, 512, 512, [2]uint64{5 << 40, 512}, nil},
		{"a partial sector is an alignment error", 512, 100, 512, [2]uint64{}, &alignErr},
		{"a misaligned start is an alignment error", 100, 512, 512, [2]uint64{}, &alignErr},
		{"512-byte alignment is not enough on a 4K device", 512, 4096, 4096, [2]uint64{}, &alignErr},
		{"a zero length is a range error", 0, 0, 512, [2]uint64{}, &rangeErr},
		{"a negative offset is a range error", -512, 512, 512, [2]uint64{}, &rangeErr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rangeArg(OpDiscard, tc.off, tc.n, tc.sector)
			if tc.errAs != nil {
				if !errors.As(err, tc.errAs) {
					t.Fatalf("error %v, want %T", err, tc.errAs)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
			// The kernel reads the argument as two native u64 in a row.
			raw := unsafe.Slice((*byte)(unsafe.Pointer(&got)), 16)
			if unsafe.Sizeof(got) != 16 || *(*uint64)(unsafe.Pointer(&raw[8])) != tc.want[1] {
				t.Fatalf("argument layout %x", raw)
			}
		})
	}
}

func TestBlockDeviceRefusesARegularFile(t *testing.T) {
	path := newBackingFile(t, 1<<20)
	_, err := OpenBlockDevice(path, FileOptions{})
	if !errors.Is(err, ErrNotBlockDevice) {
		t.Fatalf("OpenBlockDevice on a file: %v", err)
	}
}

// Without a block device the ioctls can still be sent to a regular file:
// the kernel must answer ENOTTY, which shows the request numbers and the
// argument passing reach it intact.
func TestBlockIoctlsReachTheKernel(t *testing.T) {
	path := newBackingFile(t, 1<<20)
	fd, err := openFD(path, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var size uint64
	if err := ioctlPtr(fd, unix.BLKGETSIZE64, unsafe.Pointer(&size)); err != unix.ENOTTY {
		t.Errorf("BLKGETSIZE64 on a file: %v, want ENOTTY", err)
	}
	dev := &BlockDevice{fdIO: fdIO{fd: fd, path: path}, sector: 512}
	for _, op := range []func(int64, int64) error{dev.Discard, dev.WriteZeroes} {
		if err := op(0, 4096); !errors.Is(err, unix.ENOTTY) {
			t.Errorf("range ioctl on a file: %v, want ENOTTY", err)
		}
	}
	if _, err := dev.Size(); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("Size on a file: %v, want ENOTTY", err)
	}
}

// TestBlockDeviceRoundTrip runs only when THIND_BLK_TEST_DEVICE names a
// block device whose contents may be destroyed (a loop device, say).
func TestBlockDeviceRoundTrip(t *testing.T) {
	path := os.Getenv("THIND_BLK_TEST_DEVICE")
	if path == "" {
		t.Skip("set THIND_BLK_TEST_DEVICE to a scratch block device to run")
	}
	for _, direct := range []bool{false, true} {
		dev, err := OpenBlockDevice(path, FileOptions{Direct: direct})
		if err != nil {
			t.Fatal(err)
		}
		size, err := dev.Size()
		if err != nil || size < 1<<20 {
			t.Fatalf("size %d, %v", size, err)
		}
		t.Logf("%s: %d bytes, sector %d, direct %v", path, size, dev.SectorSize(), direct)
		d, err := New(dev, Config{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		data, _ := AlignedBuffer(1<<20, 4096)
		fillPattern(data, 11)
		if err := d.Write(ctx, data, 0, true); err != nil {
			t.Fatal(err)
		}
		got, _ := AlignedBuffer(1<<20, 4096)
		if err := d.Read(ctx, got, 0); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back: %v", err)
		}
		if err := d.WriteZeroes(ctx, 4096, 64<<10); err != nil {
			t.Fatal(err)
		}
		clear(data[4096 : 4096+64<<10])
		if err := d.Read(ctx, got, 0); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("after write zeroes: %v %s", err, firstDiff(got, data))
		}
		if err := d.Discard(ctx, 512<<10, 256<<10); err != nil && !errors.Is(err, ErrNotSupported) {
			t.Fatal(err)
		}
		if err := d.Discard(ctx, 100, 512); !errors.As(err, new(*IOError)) {
			t.Fatalf("misaligned device discard: %v", err)
		}
		if err := d.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
