package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/tooltest"
)

// fio's verify header (fio's verify.h, as fio 3.33 writes it): a block
// written with --verify=crc32c starts with this header, whose crc32c
// covers the bytes before it, then the crc32c of the rest of the block;
// fio stores both without crc32c's final inversion.
const (
	fioMagic        = 0xacca
	fioHeaderCRCOff = 36
	fioDataCRCOff   = 40
	fioHeaderSize   = 44
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fioBlock reports whether b (one block at offset off) is zeros (false)
// or a whole block fio wrote there (true); anything else is an error: a
// torn, misplaced or corrupted block.
func fioBlock(b []byte, off uint64) (bool, error) {
	if bytes.Equal(b, make([]byte, len(b))) {
		return false, nil
	}
	le := binary.LittleEndian
	switch {
	case le.Uint16(b) != fioMagic:
		return false, fmt.Errorf("block at %d: magic %#x, not fio's", off, le.Uint16(b))
	case le.Uint32(b[4:]) != uint32(len(b)):
		return false, fmt.Errorf("block at %d: fio header says %d bytes", off, le.Uint32(b[4:]))
	case le.Uint64(b[16:]) != off:
		return false, fmt.Errorf("block at %d holds fio's block for %d", off, le.Uint64(b[16:]))
	case crc32.Checksum(b[:fioHeaderCRCOff], castagnoli) != ^le.Uint32(b[fioHeaderCRCOff:]):
		return false, fmt.Errorf("block at %d: fio header checksum mismatch", off)
	case crc32.Checksum(b[fioHeaderSize:], castagnoli) != ^le.Uint32(b[fioDataCRCOff:]):
		return false, fmt.Errorf("block at %d: fio data checksum mismatch (torn write)", off)
	}
	return true, nil
}

// TestSnapshotWhileFioWrites takes a snapshot with the CLI while fio
// writes every block of a volume once, in random order, and checks the
// snapshot against itself over time: its checksum taken right after the
// snapshot holds while fio goes on writing the origin and after a
// restart; every block in it is zeros or one whole fio block for that
// offset; it holds some of fio's writes and not all. fio then verifies
// every block of the origin. (snapshot_test.go checks the instant itself
// against per-write timestamps.)
func TestSnapshotWhileFioWrites(t *testing.T) {
	const (
		size  = 32 << 20
		bs    = 4096
		iops  = 2048 // about 4 s for the whole volume
		depth = 16
	)
	d := startDaemon(t)
	d.mustCLI("volume", "create", "fio", "--size", "32M")
	dir := t.TempDir()

	fio := exec.Command(tooltest.Need(t, "fio", pkgFio), "--name=stamp", "--ioengine=nbd", "--uri="+d.unixURI("fio"),
		"--rw=randwrite", fmt.Sprintf("--bs=%d", bs), fmt.Sprintf("--iodepth=%d", depth), fmt.Sprintf("--size=%d", size),
		fmt.Sprintf("--rate_iops=%d", iops), "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0")
	var fioOut bytes.Buffer
	fio.Stdout, fio.Stderr = &fioOut, &fioOut
	if err := fio.Start(); err != nil {
		t.Fatal(err)
	}
	fioDone := make(chan error, 1)
	go func() { fioDone <- fio.Wait() }()
	t.Cleanup(func() {
		if fio.ProcessState == nil {
			fio.Process.Kill()
			<-fioDone
		}
	})

	// Snapshot once fio is well under way.
	waitFor(t, "fio to write a quarter of the volume", time.Minute, func() error {
		if w := metric(d.scrape(), `thind_volume_bytes_total{op="write",volume="fio"}`); w < size/4 {
			return fmt.Errorf("%v bytes written", w)
		}
		return nil
	})
	d.mustCLI("volume", "snapshot", "fio", "fio-snap")
	snapImage := func(name string) []byte {
		t.Helper()
		p := filepath.Join(dir, name)
		tooltest.Run(t, "nbdcopy", pkgLibnbd, d.unixURI("fio-snap"), p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	atSnapshot := snapImage("at-snapshot.img")
	sumAtSnapshot := sha256.Sum256(atSnapshot)

	select {
	case err := <-fioDone:
		if err != nil {
			t.Fatalf("fio: %v\n%s", err, fioOut.String())
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("fio did not finish in 5 minutes\n%s", fioOut.String())
	}
	t.Logf("fio:\n%s", fioOut.String())

	var in int
	for off := 0; off < size; off += bs {
		written, err := fioBlock(atSnapshot[off:off+bs], uint64(off))
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		if written {
			in++
		}
	}
	if in == 0 || in == size/bs {
		t.Fatalf("the snapshot holds %d of fio's %d blocks: not taken while fio wrote", in, size/bs)
	}
	t.Logf("the snapshot holds %d of %d blocks", in, size/bs)

	if sha256.Sum256(snapImage("after-fio.img")) != sumAtSnapshot {
		t.Fatal("the snapshot changed while fio wrote the origin")
	}
	p := filepath.Join(dir, "origin.img")
	tooltest.Run(t, "nbdcopy", pkgLibnbd, d.unixURI("fio"), p)
	origin, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < size; off += bs {
		if written, err := fioBlock(origin[off:off+bs], uint64(off)); err != nil || !written {
			t.Fatalf("origin after fio: block at %d written %v: %v", off, written, err)
		}
	}

	d.stop()
	d.start()
	if sha256.Sum256(snapImage("after-restart.img")) != sumAtSnapshot {
		t.Fatal("the snapshot changed across a restart")
	}
}
