package metatools

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/btree"
	"github.com/thind-storage/thind/metastream"
	"github.com/thind-storage/thind/spacemap"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/thinxml"
)

// Restore writes the pool described by an XML document (thin_dump's
// format) to dev, a metadata device of nrBlocks blocks, the way
// thin_restore does, but building every tree bottom-up in one pass. It
// returns the number of metadata blocks used.
func Restore(r io.Reader, dev bm.Device, nrBlocks uint64) (uint64, error) {
	rs, err := newRestorer(dev, nrBlocks)
	if err != nil {
		return 0, err
	}
	if err := thinxml.Parse(r, rs); err != nil {
		return 0, err
	}
	if !rs.done {
		return 0, errors.New("restore: document ended before its superblock did")
	}
	return rs.used, nil
}

// restorer writes a pool from a stream of emitter events. Blocks are
// laid out in the order they complete: device trees as their mappings
// arrive, then the details and top-level trees, the data space map and
// finally the metadata space map, which counts them all. Block 0, the
// superblock, is zeroed first and written last.
type restorer struct {
	dev      bm.Device
	nrBlocks uint64
	w        *blockWriter
	sb       metastream.Superblock
	inSB     bool
	done     bool
	used     uint64

	devices map[uint32]bool
	details []detailEntry
	tops    []topEntry
	data    []uint64 // one data block per mapping, for the data space map

	dev0     metastream.Device
	pending  []mapEntry // mappings of the current device
	inDevice bool
}

type detailEntry struct {
	id uint64
	d  thinmeta.DeviceDetails
}

type topEntry struct{ id, root uint64 }

type mapEntry struct{ vblock, value uint64 }

func newRestorer(dev bm.Device, nrBlocks uint64) (*restorer, error) {
	nrBlocks = min(nrBlocks, spacemap.MaxMetadataBlocks)
	if nrBlocks < 16 {
		return nil, fmt.Errorf("metadata device of %d blocks is too small", nrBlocks)
	}
	// An interrupted restore must not leave an old superblock pointing
	// at blocks being overwritten.
	if _, err := dev.WriteAt(make([]byte, bm.BlockSize), 0); err != nil {
		return nil, err
	}
	if err := dev.Sync(); err != nil {
		return nil, err
	}
	return &restorer{dev: dev, nrBlocks: nrBlocks, w: newBlockWriter(dev, 1, nrBlocks), devices: map[uint32]bool{}}, nil
}

func (rs *restorer) BeginSuperblock(sb metastream.Superblock) error {
	if rs.inSB || rs.done {
		return errors.New("restore: more than one superblock")
	}
	if err := thinmeta.CheckDataBlockSize(uint64(sb.DataBlockSize) * 512); err != nil {
		return fmt.Errorf("data_block_size: %w", err)
	}
	if sb.NrDataBlocks > thinmeta.MaxDataBlock+1 {
		return fmt.Errorf("nr_data_blocks %d: mappings address at most %d", sb.NrDataBlocks, uint64(thinmeta.MaxDataBlock+1))
	}
	if nb := spacemap.NrBitmaps(sb.NrDataBlocks); nb >= rs.nrBlocks {
		return &ErrMetadataFull{Need: nb, Have: rs.nrBlocks}
	}
	if sb.MetadataSnap != 0 {
		return errors.New("metadata_snap: a metadata snapshot cannot be restored (its blocks are not in the document)")
	}
	if len(sb.UUID) > 16 {
		return fmt.Errorf("uuid %q is longer than the 16 bytes of the superblock field", sb.UUID)
	}
	rs.sb, rs.inSB = sb, true
	return nil
}

func (rs *restorer) BeginDevice(d metastream.Device) error {
	if uint64(d.DevID) > thinmeta.MaxDevID {
		return fmt.Errorf("dev_id %d: Linux accepts at most %d", d.DevID, thinmeta.MaxDevID)
	}
	if rs.devices[d.DevID] {
		return fmt.Errorf("dev_id %d appears twice", d.DevID)
	}
	rs.devices[d.DevID] = true
	rs.dev0, rs.inDevice = d, true
	rs.pending = rs.pending[:0]
	return nil
}

func (rs *restorer) Map(m metastream.Mapping) error {
	if m.Time >= 1<<24 {
		return fmt.Errorf("time %d does not fit a mapping's 24 bits", m.Time)
	}
	if m.Time > rs.sb.Time {
		// The kernel tells shared blocks by comparing times with the
		// pool's: a mapping from the future would look unshared to a
		// later snapshot and be overwritten in place.
		return fmt.Errorf("mapping time %d after the pool's time %d", m.Time, rs.sb.Time)
	}
	if m.Data+m.Len > rs.sb.NrDataBlocks || m.Data+m.Len < m.Data {
		return fmt.Errorf("data blocks %d..%d beyond nr_data_blocks %d", m.Data, m.Data+m.Len-1, rs.sb.NrDataBlocks)
	}
	for i := uint64(0); i < m.Len; i++ {
		rs.pending = append(rs.pending, mapEntry{m.Origin + i, thinmeta.PackBlockTime(m.Data+i, m.Time)})
	}
	return nil
}

func (rs *restorer) EndDevice() error {
	rs.inDevice = false
	p := rs.pending
	if !slices.IsSortedFunc(p, func(a, b mapEntry) int { return cmpU64(a.vblock, b.vblock) }) {
		slices.SortFunc(p, func(a, b mapEntry) int { return cmpU64(a.vblock, b.vblock) })
	}
	tb := btree.NewBuilder(rs.w, 8)
	var v [8]byte
	for i, e := range p {
		if i > 0 && e.vblock == p[i-1].vblock {
			return fmt.Errorf("dev_id %d maps virtual block %d twice", rs.dev0.DevID, e.vblock)
		}
		binary.LittleEndian.PutUint64(v[:], e.value)
		if err := tb.Add(e.vblock, v[:]); err != nil {
			return err
		}
		b, _ := thinmeta.UnpackBlockTime(e.value)
		rs.data = append(rs.data, b)
	}
	root, err := tb.Finish()
	if err != nil {
		return err
	}
	id := uint64(rs.dev0.DevID)
	rs.tops = append(rs.tops, topEntry{id, root})
	rs.details = append(rs.details, detailEntry{id, thinmeta.DeviceDetails{
		MappedBlocks:    uint64(len(p)),
		TransactionID:   rs.dev0.Transaction,
		CreationTime:    rs.dev0.CreationTime,
		SnapshottedTime: rs.dev0.SnapTime,
	}})
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (rs *restorer) EndSuperblock() error {
	slices.SortFunc(rs.tops, func(a, b topEntry) int { return cmpU64(a.id, b.id) })
	slices.SortFunc(rs.details, func(a, b detailEntry) int { return cmpU64(a.id, b.id) })

	details := btree.NewBuilder(rs.w, thinmeta.DeviceDetailsSize)
	var dv [thinmeta.DeviceDetailsSize]byte
	for _, e := range rs.details {
		e.d.Encode(dv[:])
		if err := details.Add(e.id, dv[:]); err != nil {
			return err
		}
	}
	detailsRoot, err := details.Finish()
	if err != nil {
		return err
	}
	top := btree.NewBuilder(rs.w, 8)
	for _, e := range rs.tops {
		if err := top.Add(e.id, leBytes(e.root)); err != nil {
			return err
		}
	}
	mappingRoot, err := top.Finish()
	if err != nil {
		return err
	}
	dataRoot, err := rs.writeDataSpaceMap()
	if err != nil {
		return err
	}
	metaRoot, err := rs.writeMetadataSpaceMap()
	if err != nil {
		return err
	}
	s := thinmeta.Superblock{
		Magic:             thinmeta.SuperblockMagic,
		Version:           rs.sb.Version,
		Flags:             rs.sb.Flags,
		Time:              rs.sb.Time,
		TransactionID:     rs.sb.Transaction,
		DataMappingRoot:   mappingRoot,
		DeviceDetailsRoot: detailsRoot,
		DataBlockSize:     rs.sb.DataBlockSize,
		MetadataBlockSize: thinmeta.MetadataBlockSectors,
		MetadataNrBlocks:  rs.nrBlocks,
	}
	copy(s.UUID[:], rs.sb.UUID)
	dataRoot.Encode(s.DataSMRoot[:])
	metaRoot.Encode(s.MetadataSMRoot[:])
	if err := rs.w.flush(); err != nil {
		return err
	}
	if err := rs.dev.Sync(); err != nil {
		return err
	}
	block := make([]byte, bm.BlockSize)
	s.Encode(block)
	thinmeta.SuperblockValidator.Prepare(block, 0)
	if _, err := rs.dev.WriteAt(block, 0); err != nil {
		return err
	}
	if err := rs.dev.Sync(); err != nil {
		return err
	}
	rs.done = true
	return nil
}

func leBytes(v uint64) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return b[:]
}

// writeDataSpaceMap writes the data space map from the mappings' data
// blocks: one reference per mapping, since every device has a tree of its
// own (restore shares no subtrees).
func (rs *restorer) writeDataSpaceMap() (spacemap.Root, error) {
	slices.Sort(rs.data)
	nr := rs.sb.NrDataBlocks
	refs := btree.NewBuilder(rs.w, 4)
	counts := newBitmapCounts(nr)
	for i := 0; i < len(rs.data); {
		j := i
		for j < len(rs.data) && rs.data[j] == rs.data[i] {
			j++
		}
		n := uint64(j - i)
		if n > 1<<32-1 {
			return spacemap.Root{}, fmt.Errorf("data block %d is mapped %d times", rs.data[i], n)
		}
		counts.set(rs.data[i], uint32(n))
		if n > 2 {
			var v [4]byte
			binary.LittleEndian.PutUint32(v[:], uint32(n))
			if err := refs.Add(rs.data[i], v[:]); err != nil {
				return spacemap.Root{}, err
			}
		}
		i = j
	}
	refRoot, err := refs.Finish()
	if err != nil {
		return spacemap.Root{}, err
	}
	entries, err := counts.write(rs.w)
	if err != nil {
		return spacemap.Root{}, err
	}
	index := btree.NewBuilder(rs.w, 16)
	var v [16]byte
	for i, e := range entries {
		e.Encode(v[:])
		if err := index.Add(uint64(i), v[:]); err != nil {
			return spacemap.Root{}, err
		}
	}
	indexRoot, err := index.Finish()
	if err != nil {
		return spacemap.Root{}, err
	}
	return spacemap.Root{NrBlocks: nr, NrAllocated: counts.allocated, BitmapRoot: indexRoot, RefCountRoot: refRoot}, nil
}

// writeMetadataSpaceMap counts every block written so far, plus its own:
// an empty reference-count tree, the bitmaps and the index block. Every
// metadata block of a restored pool has a count of one.
func (rs *restorer) writeMetadataSpaceMap() (spacemap.Root, error) {
	nr := rs.nrBlocks
	refs := btree.NewBuilder(rs.w, 4)
	refRoot, err := refs.Finish()
	if err != nil {
		return spacemap.Root{}, err
	}
	nb := spacemap.NrBitmaps(nr)
	total := rs.w.next + nb + 1 // blocks 0..next-1, then bitmaps, then the index
	if total > nr {
		return spacemap.Root{}, &ErrMetadataFull{Need: total, Have: nr}
	}
	counts := newBitmapCounts(nr)
	for b := uint64(0); b < total; b++ {
		counts.set(b, 1)
	}
	entries, err := counts.write(rs.w)
	if err != nil {
		return spacemap.Root{}, err
	}
	idx, err := rs.w.Alloc()
	if err != nil {
		return spacemap.Root{}, err
	}
	block := make([]byte, bm.BlockSize)
	if err := spacemap.EncodeMetadataIndex(block, entries); err != nil {
		return spacemap.Root{}, err
	}
	if err := rs.w.Write(idx, block, spacemap.IndexValidator); err != nil {
		return spacemap.Root{}, err
	}
	rs.used = rs.w.next
	return spacemap.Root{NrBlocks: nr, NrAllocated: counts.allocated, BitmapRoot: idx, RefCountRoot: refRoot}, nil
}
