package metatools

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/metastream"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/thinxml"
)

// DumpOptions tune Dump.
type DumpOptions struct {
	// MetadataSnap dumps the held metadata snapshot instead of the live
	// metadata (thin_dump -m).
	MetadataSnap bool
	// SnapBlock, if not zero, must be the held snapshot's block.
	SnapBlock uint64
}

// ErrNoMetadataSnap is returned by Dump -m when no snapshot is held.
var ErrNoMetadataSnap = errors.New("no current metadata snap")

// dumpSuperblock reads a superblock as thin_dump 0.9.0 does: only its
// checksum must be right (a bad magic is the checker's business).
func dumpSuperblock(img *Image, loc uint64) (thinmeta.Superblock, error) {
	raw, err := img.RawBlock(loc)
	if err != nil {
		return thinmeta.Superblock{}, err
	}
	want, got := bm.ComputeChecksum(raw, thinmeta.SuperblockCsumXor), bm.StoredChecksum(raw)
	if want != got {
		return thinmeta.Superblock{}, fmt.Errorf("bad checksum in superblock at block %d, wanted %d (stored %d)", loc, want, got)
	}
	return thinmeta.DecodeSuperblock(raw), nil
}

// viewSuperblock returns the superblock a tool reads: the live one, or
// with metadataSnap the held metadata snapshot's copy (whose block, if
// snapBlock is not 0, must be snapBlock). A pool in use may be read only
// through its metadata snapshot.
func viewSuperblock(img *Image, metadataSnap bool, snapBlock uint64) (thinmeta.Superblock, error) {
	if err := img.ReadableAs(metadataSnap); err != nil {
		return thinmeta.Superblock{}, err
	}
	sb, err := dumpSuperblock(img, thinmeta.SuperblockLocation)
	if err != nil || !metadataSnap {
		return sb, err
	}
	if sb.HeldRoot == 0 {
		return thinmeta.Superblock{}, ErrNoMetadataSnap
	}
	if snapBlock != 0 && snapBlock != sb.HeldRoot {
		return thinmeta.Superblock{}, fmt.Errorf("metadata snapshot at block %d does not match the one in the superblock (%d)", snapBlock, sb.HeldRoot)
	}
	return dumpSuperblock(img, sb.HeldRoot)
}

// Dump writes the metadata as thin_dump 0.9.0's XML, byte for byte. On
// damage it stops where thin_dump stops, leaving the same partial output,
// and returns an error naming the block.
func Dump(img *Image, w io.Writer, opts DumpOptions) error {
	sb, err := viewSuperblock(img, opts.MetadataSnap, opts.SnapBlock)
	if err != nil {
		return err
	}
	return Emit(img, sb, thinxml.NewWriter(w))
}

// Emit streams the pool described by sb into e: the superblock, then each
// device of the top-level mapping tree in id order with its mappings.
func Emit(img *Image, sb thinmeta.Superblock, e metastream.Emitter) error {
	details := map[uint64]thinmeta.DeviceDetails{}
	err := readTree(img, "device details tree", sb.DeviceDetailsRoot, thinmeta.DeviceDetailsSize, func(k uint64, v []byte) error {
		details[k] = thinmeta.DecodeDeviceDetails(v)
		return nil
	})
	if err != nil {
		return err
	}
	type devRoot struct{ dev, root uint64 }
	var devs []devRoot
	err = readTree(img, "mapping tree (top level)", sb.DataMappingRoot, 8, func(k uint64, v []byte) error {
		devs = append(devs, devRoot{k, binary.LittleEndian.Uint64(v)})
		return nil
	})
	if err != nil {
		return err
	}
	err = e.BeginSuperblock(metastream.Superblock{
		Time:          sb.Time,
		Transaction:   sb.TransactionID,
		Flags:         sb.Flags,
		Version:       sb.Version,
		DataBlockSize: sb.DataBlockSize,
		NrDataBlocks:  sb.DataSpaceMapRoot().NrBlocks,
	})
	if err != nil {
		return err
	}
	for _, d := range devs {
		det, ok := details[d.dev]
		if !ok {
			return flushAfter(e, fmt.Errorf("mappings present for device %d, but it isn't present in device tree", d.dev))
		}
		if d.dev > math.MaxUint32 {
			return flushAfter(e, fmt.Errorf("device id %d does not fit the XML format", d.dev))
		}
		err := e.BeginDevice(metastream.Device{
			DevID:        uint32(d.dev),
			MappedBlocks: det.MappedBlocks,
			Transaction:  det.TransactionID,
			CreationTime: det.CreationTime,
			SnapTime:     det.SnapshottedTime,
		})
		if err != nil {
			return err
		}
		name := fmt.Sprintf("mapping tree of device %d", d.dev)
		err = readTree(img, name, d.root, 8, func(vblock uint64, v []byte) error {
			block, t := thinmeta.UnpackBlockTime(binary.LittleEndian.Uint64(v))
			return e.Map(metastream.Mapping{Origin: vblock, Data: block, Len: 1, Time: t})
		})
		if err != nil {
			e.EndDevice()
			return flushAfter(e, err)
		}
		if err := e.EndDevice(); err != nil {
			return err
		}
	}
	return e.EndSuperblock()
}

// flushAfter writes out what was emitted before the failure, as thin_dump
// leaves its partial output behind.
func flushAfter(e metastream.Emitter, err error) error {
	if f, ok := e.(interface{ Flush() error }); ok {
		f.Flush()
	}
	return err
}
