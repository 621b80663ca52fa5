package metatools

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/btree"
	"github.com/thind-storage/thind/metastream"
	"github.com/thind-storage/thind/thinmeta"
)

// RepairOptions supply superblock fields when the damaged superblock
// cannot be trusted for them (thin_repair's --transaction-id and friends).
type RepairOptions struct {
	TransactionID *uint64
	DataBlockSize *uint32
	NrDataBlocks  *uint64
}

// RepairReport says what a repair kept and what it had to give up.
type RepairReport struct {
	Devices  int      `json:"devices"`
	Mappings uint64   `json:"mappings"`
	Losses   []string `json:"losses"`
	Notes    []string `json:"notes"`
}

// Repair salvages every mapping still reachable in a damaged image and
// writes a new, valid pool with it to out (nrBlocks blocks), like
// thin_repair. Nodes whose checksum fails are dropped with everything
// below them; nodes that are readable but malformed (keys out of order,
// keys outside their parent's range) give up their entries, which are
// sorted out; mappings to data blocks beyond the data device are dropped;
// space maps are rebuilt from scratch.
func Repair(img *Image, out bm.Device, nrBlocks uint64, opts RepairOptions) (*RepairReport, error) {
	rep := &RepairReport{}
	sb, err := salvageSuperblock(img, opts, rep)
	if err != nil {
		return rep, err
	}
	s := &salvager{img: img, rep: rep}
	details := map[uint64]thinmeta.DeviceDetails{}
	s.tree("device details tree", sb.DeviceDetailsRoot, thinmeta.DeviceDetailsSize, func(k uint64, v []byte) {
		if _, dup := details[k]; dup {
			rep.Losses = append(rep.Losses, fmt.Sprintf("device details tree: device %d appears twice; kept the first", k))
			return
		}
		details[k] = thinmeta.DecodeDeviceDetails(v)
	})
	roots := map[uint64]uint64{}
	s.tree("mapping tree (top level)", sb.DataMappingRoot, 8, func(k uint64, v []byte) {
		if _, dup := roots[k]; !dup {
			roots[k] = binary.LittleEndian.Uint64(v)
		}
	})
	nrData := sb.DataSpaceMapRoot().NrBlocks
	if opts.NrDataBlocks != nil {
		nrData = *opts.NrDataBlocks
	}
	ids := make([]uint64, 0, len(details)+len(roots))
	for id := range details {
		ids = append(ids, id)
	}
	for id := range roots {
		if _, ok := details[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)

	rs, err := newRestorer(out, nrBlocks)
	if err != nil {
		return rep, err
	}
	// The repaired pool keeps the damaged one's identity (the uuid field,
	// which thind uses to match a pool with its catalog) if block 0 still
	// looks like a superblock; thin_repair writes zeroes there.
	var uuid string
	if sb.Magic == thinmeta.SuperblockMagic && sb.UUID != ([16]byte{}) {
		uuid = string(sb.UUID[:])
	}
	err = rs.BeginSuperblock(metastream.Superblock{
		UUID: uuid, Time: sb.Time, Transaction: sb.TransactionID, Flags: sb.Flags &^ thinmeta.FlagNeedsCheck,
		Version: thinmeta.Version, DataBlockSize: sb.DataBlockSize, NrDataBlocks: nrData,
	})
	if err != nil {
		return rep, err
	}
	for _, id := range ids {
		if id > thinmeta.MaxDevID {
			rep.Losses = append(rep.Losses, fmt.Sprintf("device %d: id beyond Linux's limit; dropped", id))
			continue
		}
		det, ok := details[id]
		if !ok {
			// Unknown history: call every mapping shared, so that the
			// kernel copies on write instead of overwriting a block a
			// snapshot may still use.
			det = thinmeta.DeviceDetails{TransactionID: sb.TransactionID, SnapshottedTime: sb.Time}
			rep.Losses = append(rep.Losses, fmt.Sprintf("device %d: details lost; rebuilt with every mapping treated as shared", id))
		}
		det.CreationTime = min(det.CreationTime, sb.Time)
		det.SnapshottedTime = min(det.SnapshottedTime, sb.Time)
		var ms []mapEntry
		if root, ok := roots[id]; ok {
			name := fmt.Sprintf("mapping tree of device %d", id)
			s.tree(name, root, 8, func(vblock uint64, v []byte) {
				ms = append(ms, mapEntry{vblock, binary.LittleEndian.Uint64(v)})
			})
		} else {
			rep.Losses = append(rep.Losses, fmt.Sprintf("device %d: no mapping tree; kept with no mappings", id))
		}
		ms = s.cleanMappings(id, ms, nrData, sb.Time)
		err := rs.BeginDevice(metastream.Device{DevID: uint32(id), Transaction: det.TransactionID,
			CreationTime: det.CreationTime, SnapTime: det.SnapshottedTime})
		if err != nil {
			return rep, err
		}
		for _, m := range ms {
			block, t := thinmeta.UnpackBlockTime(m.value)
			if err := rs.Map(metastream.Mapping{Origin: m.vblock, Data: block, Len: 1, Time: t}); err != nil {
				return rep, err
			}
		}
		if err := rs.EndDevice(); err != nil {
			return rep, err
		}
		rep.Devices++
		rep.Mappings += uint64(len(ms))
	}
	if sb.HeldRoot != 0 {
		rep.Losses = append(rep.Losses, fmt.Sprintf("metadata snapshot at block %d: released", sb.HeldRoot))
	}
	return rep, rs.EndSuperblock()
}

// cleanMappings sorts salvaged mappings and drops the ones a valid pool
// cannot hold.
func (s *salvager) cleanMappings(dev uint64, ms []mapEntry, nrData uint64, poolTime uint32) []mapEntry {
	slices.SortStableFunc(ms, func(a, b mapEntry) int { return cmpU64(a.vblock, b.vblock) })
	out := ms[:0]
	for i, m := range ms {
		block, t := thinmeta.UnpackBlockTime(m.value)
		switch {
		case i > 0 && m.vblock == ms[i-1].vblock:
			s.rep.Losses = append(s.rep.Losses, fmt.Sprintf("device %d: virtual block %d mapped twice; kept the first", dev, m.vblock))
			continue
		case block >= nrData:
			s.rep.Losses = append(s.rep.Losses, fmt.Sprintf("device %d: virtual block %d maps to data block %d beyond the data device (%d blocks); dropped", dev, m.vblock, block, nrData))
			continue
		case t > poolTime:
			// Time 0 makes the mapping look shared: copy on write is
			// the safe side.
			m.value = thinmeta.PackBlockTime(block, 0)
			s.rep.Notes = append(s.rep.Notes, fmt.Sprintf("device %d: virtual block %d had time %d after the pool's %d; set to 0", dev, m.vblock, t, poolTime))
		}
		out = append(out, m)
	}
	return out
}

// salvageSuperblock takes what can be trusted from block 0: its fields are
// used, whatever its checksum or magic say, as long as they make sense.
func salvageSuperblock(img *Image, opts RepairOptions, rep *RepairReport) (thinmeta.Superblock, error) {
	raw, err := img.RawBlock(thinmeta.SuperblockLocation)
	if err != nil {
		return thinmeta.Superblock{}, err
	}
	sb := thinmeta.DecodeSuperblock(raw)
	if want, got := bm.ComputeChecksum(raw, thinmeta.SuperblockCsumXor), bm.StoredChecksum(raw); want != got {
		rep.Notes = append(rep.Notes, fmt.Sprintf("superblock: bad checksum (computed %d, stored %d); its fields were checked one by one", want, got))
	}
	if sb.Magic != thinmeta.SuperblockMagic {
		rep.Notes = append(rep.Notes, fmt.Sprintf("superblock: bad magic %d; rewritten", sb.Magic))
	}
	if opts.TransactionID != nil {
		sb.TransactionID = *opts.TransactionID
	}
	if opts.DataBlockSize != nil {
		sb.DataBlockSize = *opts.DataBlockSize
	}
	var bad []string
	if thinmeta.CheckDataBlockSize(uint64(sb.DataBlockSize)*512) != nil {
		bad = append(bad, fmt.Sprintf("data block size (%d sectors; give --data-block-size)", sb.DataBlockSize))
	}
	if sb.DataMappingRoot == 0 || sb.DataMappingRoot >= img.NrBlocks {
		bad = append(bad, fmt.Sprintf("mapping tree root (%d)", sb.DataMappingRoot))
	}
	if sb.DeviceDetailsRoot == 0 || sb.DeviceDetailsRoot >= img.NrBlocks {
		bad = append(bad, fmt.Sprintf("device details root (%d)", sb.DeviceDetailsRoot))
	}
	if opts.NrDataBlocks == nil {
		if n := sb.DataSpaceMapRoot().NrBlocks; n == 0 || n > thinmeta.MaxDataBlock+1 {
			bad = append(bad, fmt.Sprintf("number of data blocks (%d; give --nr-data-blocks)", n))
		}
	}
	if len(bad) > 0 {
		return sb, fmt.Errorf("the superblock cannot be trusted for: %v", bad)
	}
	return sb, nil
}

// salvager walks damaged trees, taking every entry it can trust.
type salvager struct {
	img *Image
	rep *RepairReport
}

// tree calls fn for every entry found under root, in no particular order,
// skipping unreadable nodes and recording what was lost.
func (s *salvager) tree(name string, root uint64, valueSize int, fn func(key uint64, value []byte)) {
	seen := map[uint64]bool{}
	var walk func(b uint64, depth int)
	walk = func(b uint64, depth int) {
		if seen[b] || depth > btree.MaxDepth {
			s.rep.Losses = append(s.rep.Losses, fmt.Sprintf("%s: block %d reached twice or too deep (a cycle?); skipped", name, b))
			return
		}
		seen[b] = true
		blk, err := s.img.BM.ReadLock(b, btree.NodeValidator)
		if err != nil {
			var what string
			if errors.Is(err, bm.ErrCorruption) {
				what = describe(err)
			} else {
				what = err.Error()
			}
			s.rep.Losses = append(s.rep.Losses, fmt.Sprintf("%s: block %d: %s; everything below it is lost", name, b, what))
			return
		}
		defer s.img.BM.Unlock(blk)
		n := btree.ViewNode(blk.Data())
		vs := valueSize
		if n.IsInternal() {
			vs = 8
		}
		if n.ValueSize() != vs {
			s.rep.Losses = append(s.rep.Losses, fmt.Sprintf("%s: block %d: value size %d, expected %d; everything below it is lost", name, b, n.ValueSize(), vs))
			return
		}
		for i := 1; i < n.NrEntries(); i++ {
			if n.Key(i) <= n.Key(i-1) {
				s.rep.Notes = append(s.rep.Notes, fmt.Sprintf("%s: block %d: keys out of order; its entries were sorted", name, b))
				break
			}
		}
		for i := 0; i < n.NrEntries(); i++ {
			if n.IsInternal() {
				walk(n.Value64(i), depth+1)
			} else {
				fn(n.Key(i), n.Value(i))
			}
		}
	}
	walk(root, 0)
}
