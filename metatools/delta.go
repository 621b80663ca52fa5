package metatools

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/thind-storage/thind/thinmeta"
)

// DeltaOptions select what Delta compares and how it prints it.
type DeltaOptions struct {
	Left, Right uint64 // thin_delta's --snap1 and --snap2
	// MetadataSnap compares the devices as the held metadata snapshot
	// has them (thin_delta -m); SnapBlock, if not 0, must be its block.
	MetadataSnap bool
	SnapBlock    uint64
	// Verbose prints every range with its data blocks (--verbose).
	Verbose bool
	// JSON prints JSON instead of thin_delta's XML, always with the data
	// blocks.
	JSON bool
}

// NoMappingTreeError is thin_delta's refusal of a device the mapping
// tree does not hold.
type NoMappingTreeError struct {
	Flag string // "snap1" or "snap2"
	Dev  uint64
}

func (e *NoMappingTreeError) Error() string {
	return fmt.Sprintf("Unable to find mapping tree for %s (%d)", e.Flag, e.Dev)
}

// DeltaHeader is what a delta's output says of the pool and the devices
// before the runs.
type DeltaHeader struct {
	Time          uint32 `json:"time"`
	Transaction   uint64 `json:"transaction"`
	DataBlockSize uint32 `json:"data_block_size"`
	NrDataBlocks  uint64 `json:"nr_data_blocks"`
	MetadataSnap  uint64 `json:"metadata_snap,omitempty"` // a snapshot the superblock read holds
	Left          uint64 `json:"left"`
	Right         uint64 `json:"right"`
}

// Delta writes how two devices' mappings compare, as thin_delta 0.9.0
// does, byte for byte (or as JSON). The comparison is thinmeta's:
// subtrees the devices share are read once, not once per device.
func Delta(img *Image, w io.Writer, opts DeltaOptions) error {
	sb, err := viewSuperblock(img, opts.MetadataSnap, opts.SnapBlock)
	if err != nil {
		return err
	}
	roots := map[uint64]uint64{}
	err = readTree(img, "mapping tree (top level)", sb.DataMappingRoot, 8, func(k uint64, v []byte) error {
		if k == opts.Left || k == opts.Right {
			roots[k] = binary.LittleEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, ok := roots[opts.Left]; !ok {
		return &NoMappingTreeError{"snap1", opts.Left}
	}
	if _, ok := roots[opts.Right]; !ok {
		return &NoMappingTreeError{"snap2", opts.Right}
	}
	h := DeltaHeader{
		Time: sb.Time, Transaction: sb.TransactionID, DataBlockSize: sb.DataBlockSize,
		NrDataBlocks: sb.DataSpaceMapRoot().NrBlocks, MetadataSnap: sb.HeldRoot,
		Left: opts.Left, Right: opts.Right,
	}
	var e deltaEmitter
	switch {
	case opts.JSON:
		e = &deltaJSON{w: w}
	case opts.Verbose:
		e = &deltaVerbose{w: w}
	default:
		e = &deltaSimple{w: w}
	}
	if err := e.begin(h); err != nil {
		return err
	}
	// The plain form prints no data blocks, and merges runs whatever
	// theirs (deltaSimple).
	plain := !opts.JSON && !opts.Verbose
	dopts := thinmeta.DeltaOptions{AnyData: plain}
	if plain {
		dopts.Mapped = mappedCounts(img, sb, opts.Left, opts.Right)
	}
	_, err = thinmeta.DeltaTrees(img.TM, roots[opts.Left], roots[opts.Right], dopts, e.run)
	if err != nil {
		return fmt.Errorf("comparing devices %d and %d: %w", opts.Left, opts.Right, err)
	}
	return e.end()
}

// mappedCounts returns the two devices' mapped block counts from the
// device details tree, which let the plain comparison skip the subtrees
// they share (thinmeta.DeltaOptions.Mapped), or nil if the tree cannot
// give both: thin_delta never reads it, so it must not stop a delta.
func mappedCounts(img *Image, sb thinmeta.Superblock, left, right uint64) *[2]uint64 {
	var counts [2]uint64
	found := 0
	err := readTree(img, "device details tree", sb.DeviceDetailsRoot, thinmeta.DeviceDetailsSize, func(k uint64, v []byte) error {
		if k == left || k == right {
			d := thinmeta.DecodeDeviceDetails(v)
			if k == left {
				counts[0] = d.MappedBlocks
				found++
			}
			if k == right {
				counts[1] = d.MappedBlocks
				found++
			}
		}
		return nil
	})
	if err != nil || found != 2 {
		return nil
	}
	return &counts
}
