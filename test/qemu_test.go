package test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/tooltest"
)

// writeRandomImage writes a raw image of size bytes as a disk image
// looks: runs of random data and runs of zeros (a quarter of the space),
// each from one data block to 4 MiB long, and in some data blocks a zero
// run of 4 to 32 KiB. It returns which data blocks hold a non-zero byte.
func writeRandomImage(t *testing.T, path string, size int64, seed uint64) provisioned {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := randtest.Stream(seed, 2)
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	data := rand.NewChaCha8(key)
	w := bufio.NewWriterSize(f, 4<<20)
	nonzero := provisioned{}
	block := make([]byte, blockSize)
	for b := int64(0); b*blockSize < size; {
		run := 1 + rng.Int64N(64)
		zero := rng.IntN(4) == 0
		for ; run > 0 && b*blockSize < size; run, b = run-1, b+1 {
			clear(block)
			if !zero {
				data.Read(block)
				if rng.IntN(16) == 0 {
					at, n := rng.IntN(12)*4096, (1+rng.IntN(8))*4096
					clear(block[at:min(at+n, blockSize)])
				}
				nonzero[b] = true
			}
			if _, err := w.Write(block); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return nonzero
}

// qemuImgMap returns qemu-img map's view of an image in nbdinfo's form
// (type 0 data, 3 hole and zero).
func qemuImgMap(t *testing.T, uri string) []extent {
	t.Helper()
	return parseQemuImgMap(t, tooltest.Run(t, "qemu-img", pkgQemu, "map", "--output=json", "-f", "raw", uri))
}

// parseQemuImgMap reads the output of qemu-img map --output=json in
// nbdinfo's form.
func parseQemuImgMap(t *testing.T, out string) []extent {
	t.Helper()
	var qm []struct {
		Start, Length int64
		Data, Zero    bool
	}
	if err := json.Unmarshal([]byte(out), &qm); err != nil {
		t.Fatalf("qemu-img map: %v\n%s", err, out)
	}
	var ext []extent
	for _, m := range qm {
		typ := int64(0)
		if !m.Data {
			typ |= 1
		}
		if m.Zero {
			typ |= 2
		}
		ext = appendExtent(ext, extent{m.Start, m.Length, typ})
	}
	return ext
}

func TestQemuImgConvertsOneGiBIntoAVolumeAndBack(t *testing.T) {
	const size = 1 << 30
	d := startDaemon(t)
	d.mustCLI("volume", "create", "img", "--size", "1G")
	dir := t.TempDir()
	src, back := filepath.Join(dir, "src.img"), filepath.Join(dir, "back.img")
	seed := randtest.Seed(t)
	start := time.Now()
	nonzero := writeRandomImage(t, src, size, seed)
	t.Logf("image written in %v", time.Since(start))

	tooltest.Run(t, "qemu-img", pkgQemu, "convert", "-n", "-f", "raw", "-O", "raw", src, d.unixURI("img"))
	tooltest.Run(t, "qemu-img", pkgQemu, "convert", "-f", "raw", "-O", "raw", d.tcpURI("img"), back)
	if out, errOut, err := tooltest.RunErr(t, "cmp", pkgDiffutils, src, back); err != nil {
		t.Fatalf("cmp: the image read back differs from the source: %v\n%s%s", err, out, errOut)
	}
	out := tooltest.Run(t, "qemu-img", pkgQemu, "compare", "-f", "raw", "-F", "raw", src, d.unixURI("img"))
	if !strings.Contains(out, "Images are identical") {
		t.Errorf("qemu-img compare: %s", out)
	}

	// qemu-img skips zeros: the volume maps exactly the blocks with data,
	// and qemu-img map, nbdinfo --map and the catalog agree on it.
	want := nonzero.extents(size)
	qm := qemuImgMap(t, d.unixURI("img"))
	if fmt.Sprint(qm) != fmt.Sprint(want) {
		t.Errorf("qemu-img map: %d extents, want %d:\n got %.400v\nwant %.400v", len(qm), len(want), qm, want)
	}
	if nm := nbdinfoMap(t, d.tcpURI("img")); fmt.Sprint(nm) != fmt.Sprint(qm) {
		t.Errorf("nbdinfo --map and qemu-img map differ:\n%.400v\n%.400v", nm, qm)
	}
	if v := d.volume("img"); v.MappedBytes != uint64(len(nonzero))*blockSize {
		t.Errorf("volume show: %d bytes mapped, want %d", v.MappedBytes, len(nonzero)*blockSize)
	}

	// A changed byte is a difference qemu-img compare finds (it reports
	// the sector).
	tooltest.Run(t, "qemu-io", pkgQemu, "-f", "raw", "-c", "write -P 0x5a 123456789 1", d.unixURI("img"))
	out, errOut, err := tooltest.RunErr(t, "qemu-img", pkgQemu, "compare", "-f", "raw", "-F", "raw", src, d.unixURI("img"))
	if tooltest.ExitStatus(t, err) != 1 || !strings.Contains(out, "Content mismatch at offset 123456512!") {
		t.Errorf("qemu-img compare after a change: %v\n%s%s", err, out, errOut)
	}
}

func TestQemuIOPatternsReadBack(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "qio", "--size", "32M")
	for _, uri := range []string{d.unixURI("qio"), d.tcpURI("qio")} {
		out := tooltest.Run(t, "qemu-io", pkgQemu, "-f", "raw",
			"-c", "write -P 0xab 0 1M", "-c", "read -P 0xab 0 1M",
			"-c", "write -P 0x01 1M 1M", "-c", "write -z 1M 1M", "-c", "read -P 0 1M 1M",
			"-c", "write -P 0xcd 2M 1M", "-c", "write -z -u 2M 1M", "-c", "read -P 0 2M 1M",
			"-c", "write -P 0xef 3M 1M", "-c", "discard 3M 1M", "-c", "read -P 0 3M 1M",
			"-c", "write -P 0x33 4M 100k", "-c", "discard 4M 64k", "-c", "read -P 0 4M 64k", "-c", "read -P 0x33 4160k 36k",
			"-c", "write -f -P 0x44 5M 64k", "-c", "read -P 0x44 5M 64k", "-c", "flush",
			"-c", "aio_write -P 0x11 8M 64k", "-c", "aio_write -P 0x22 9M 192k", "-c", "aio_write -P 0x23 9408k 4k", "-c", "aio_flush",
			"-c", "read -P 0x11 8M 64k", "-c", "read -P 0x22 9M 192k", "-c", "read -P 0x23 9408k 4k",
			"-c", "read -P 0 12M 1M", "-c", "read -P 0xab 0 1M",
			uri)
		if strings.Contains(out, "Pattern verification failed") || strings.Contains(out, "failed") {
			t.Fatalf("qemu-io on %s:\n%s", uri, out)
		}
		if n := strings.Count(out, "wrote "); n != 11 {
			t.Errorf("qemu-io: %d writes reported, want 11:\n%s", n, out)
		}
		if n := strings.Count(out, "read "); n != 12 {
			t.Errorf("qemu-io: %d reads reported, want 12:\n%s", n, out)
		}
	}
	// write -z without -u keeps 1M..2M provisioned (NO_HOLE); -u and the
	// discards leave holes.
	want := provisioned{}
	want.touch(0, 2<<20)
	want.touch(4<<20+64<<10, 36<<10)
	want.touch(5<<20, 64<<10)
	want.touch(8<<20, 64<<10)
	want.touch(9<<20, 196<<10)
	if got := nbdinfoMap(t, d.unixURI("qio")); fmt.Sprint(got) != fmt.Sprint(want.extents(32<<20)) {
		t.Errorf("nbdinfo --map after qemu-io:\n got %v\nwant %v", got, want.extents(32<<20))
	}
}
