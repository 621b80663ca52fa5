package metadata_test

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/thinpool/metadata"
)

const fixtureDir = "../../testdata/dm-thin/"

// gunzipTo writes a gzipped fixture to a sparse file (runs of zeroes are
// skipped, so a 1.1 GiB data image costs little disk).
func gunzipTo(t testing.TB, src, dst string) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	buf := make([]byte, 1<<16)
	var off int64
	for {
		n, err := io.ReadFull(z, buf)
		if n > 0 {
			if !allZero(buf[:n]) {
				if _, werr := out.WriteAt(buf[:n], off); werr != nil {
					t.Fatal(werr)
				}
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Truncate(off); err != nil {
		t.Fatal(err)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

type deviceSum struct {
	dev  uint64
	size int64
	sum  string
}

func readSums(t *testing.T, name string) []deviceSum {
	f, err := os.Open(fixtureDir + name + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sums []deviceSum
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var d deviceSum
		if strings.HasPrefix(sc.Text(), "dev=") {
			if _, err := fmt.Sscanf(sc.Text(), "dev=%d size_bytes=%d sha256=%s", &d.dev, &d.size, &d.sum); err != nil {
				t.Fatal(err)
			}
			sums = append(sums, d)
		}
	}
	return sums
}

// TestKernelPoolContentMatchesTheKernel reads every thin device of every
// pool written by Linux through thind's metadata (mapped blocks from the
// data image, holes as zeroes) and compares its sha256 with what the
// kernel read through dm-thin.
func TestKernelPoolContentMatchesTheKernel(t *testing.T) {
	paths, _ := filepath.Glob(fixtureDir + "kernel-*.sha256")
	if len(paths) == 0 {
		t.Fatal("no kernel fixtures")
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".sha256")
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			gunzipTo(t, fixtureDir+name+".meta.gz", dir+"/meta")
			gunzipTo(t, fixtureDir+name+".data.gz", dir+"/data")
			mf, n, err := bm.OpenFile(dir+"/meta", true)
			if err != nil {
				t.Fatal(err)
			}
			defer mf.Close()
			pool, err := metadata.Open(mf, n, metadata.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			data, err := os.Open(dir + "/data")
			if err != nil {
				t.Fatal(err)
			}
			defer data.Close()
			bs := int64(pool.DataBlockSize()) * 512
			block := make([]byte, bs)
			zero := make([]byte, bs)
			for _, want := range readSums(t, name) {
				h := sha256.New()
				next := int64(0) // next virtual block to hash
				nblocks := want.size / bs
				err := pool.WalkMappings(want.dev, 0, uint64(nblocks), func(vb uint64, l metadata.Lookup) error {
					for ; next < int64(vb); next++ {
						h.Write(zero)
					}
					if _, err := data.ReadAt(block, int64(l.DataBlock)*bs); err != nil {
						return err
					}
					h.Write(block)
					next++
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				for ; next < nblocks; next++ {
					h.Write(zero)
				}
				if got := hex.EncodeToString(h.Sum(nil)); got != want.sum {
					t.Errorf("device %d: sha256 %s, the kernel read %s", want.dev, got, want.sum)
				}
			}
		})
	}
}
