package metatools

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"

	"github.com/thind-storage/thind/metastream"
	"github.com/thind-storage/thind/thinxml"
)

// GenerateOptions describe a synthetic pool for tests and benchmarks.
type GenerateOptions struct {
	Seed          uint64
	Devices       int    // a base volume, then a chain of snapshots of snapshots
	Mappings      int    // mappings of the base volume
	DataBlockSize uint32 // sectors
	// Rewrite is the fraction of a snapshot's blocks rewritten (given new
	// data blocks); the rest stay shared with its origin, so blocks far
	// down the chain reach counts well above two.
	Rewrite float64
}

// Generate writes a pool in thin_dump's XML: device 0 maps Mappings blocks
// in runs and holes; each further device is a snapshot of the previous one
// (pool time advances per snapshot, as in dm-thin) that rewrites, adds and
// drops some blocks. The output is canonical thin_dump output, so a
// restore followed by a dump must reproduce it exactly.
func Generate(w io.Writer, o GenerateOptions) error {
	if o.Devices < 1 || o.Mappings < 0 {
		return fmt.Errorf("generate: need at least one device")
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	type mapping struct {
		vblock, data uint64
		time         uint32
	}
	next := uint64(0)
	var base []mapping
	v := uint64(0)
	for len(base) < o.Mappings {
		run := 1 + rng.IntN(300)
		for i := 0; i < run && len(base) < o.Mappings; i++ {
			base = append(base, mapping{v, next, 0})
			v++
			next++
		}
		v += uint64(rng.IntN(64)) // a hole
		next += uint64(rng.IntN(3))
	}
	devs := [][]mapping{base}
	for d := 1; d < o.Devices; d++ {
		prev := devs[d-1]
		cur := make([]mapping, 0, len(prev)+16)
		t := uint32(d)
		for _, m := range prev {
			switch x := rng.Float64(); {
			case x < o.Rewrite:
				m.data, m.time = next, t
				next++
			case x < o.Rewrite+0.01:
				continue // discarded in the snapshot
			}
			cur = append(cur, m)
		}
		last := uint64(0)
		if len(cur) > 0 {
			last = cur[len(cur)-1].vblock
		}
		for i := 0; i < 100; i++ {
			cur = append(cur, mapping{last + 1 + uint64(i), next, t})
			next++
		}
		devs = append(devs, cur)
	}
	xw := thinxml.NewWriter(w)
	err := xw.BeginSuperblock(metastream.Superblock{
		Time: uint32(o.Devices - 1), Transaction: uint64(o.Devices), Version: 2,
		DataBlockSize: o.DataBlockSize, NrDataBlocks: next + 1000,
	})
	if err != nil {
		return err
	}
	for d, ms := range devs {
		// Device d was created at time d and snapshotted (as the origin
		// of d+1) at time d+1; the last one at its own creation.
		snap := uint32(min(d+1, o.Devices-1))
		err := xw.BeginDevice(metastream.Device{DevID: uint32(d), MappedBlocks: uint64(len(ms)), Transaction: uint64(d),
			CreationTime: uint32(d), SnapTime: snap})
		if err != nil {
			return err
		}
		if !slices.IsSortedFunc(ms, func(a, b mapping) int { return cmpU64(a.vblock, b.vblock) }) {
			return fmt.Errorf("generate: unsorted mappings")
		}
		for _, m := range ms {
			if err := xw.Map(metastream.Mapping{Origin: m.vblock, Data: m.data, Len: 1, Time: m.time}); err != nil {
				return err
			}
		}
		if err := xw.EndDevice(); err != nil {
			return err
		}
	}
	return xw.EndSuperblock()
}
