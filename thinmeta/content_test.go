package thinmeta_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/internal/fixture"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/thinmeta"
)

var fixtureDir = fixture.Dir() + "/"

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
			fixture.Unpack(t, name+".meta.gz", dir+"/meta")
			fixture.Unpack(t, name+".data.gz", dir+"/data")
			mf, n, err := bm.OpenFile(dir+"/meta", true)
			if err != nil {
				t.Fatal(err)
			}
			defer mf.Close()
			pool, err := pooltest.OpenMetadataErr(t, mf, n, thinmeta.Options{ReadOnly: true})
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
				err := pool.WalkMappings(want.dev, 0, uint64(nblocks), func(vb uint64, l thinmeta.Lookup) error {
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
