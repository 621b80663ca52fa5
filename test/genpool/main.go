// Command genpool writes a synthetic pool in thin_dump's XML: a base
// volume and a chain of snapshots of snapshots sharing data blocks. It
// feeds the side-by-side benchmarks in test/.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"github.com/thind-storage/thind/metatools"
)

func main() {
	var o metatools.GenerateOptions
	flag.Uint64Var(&o.Seed, "seed", 1, "random seed")
	flag.IntVar(&o.Devices, "devices", 8, "devices (a base volume and a snapshot chain)")
	flag.IntVar(&o.Mappings, "mappings", 125000, "mappings of the base volume (each snapshot has about as many)")
	block := flag.Uint("block-sectors", 128, "data block size in 512-byte sectors")
	flag.Float64Var(&o.Rewrite, "rewrite", 0.05, "fraction of blocks each snapshot rewrites")
	flag.Parse()
	o.DataBlockSize = uint32(*block)
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	err := metatools.Generate(w, o)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genpool:", err)
		os.Exit(1)
	}
}
