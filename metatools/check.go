package metatools

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/spacemap"
	"github.com/thind-storage/thind/thinmeta"
)

// CheckOptions tune Check.
type CheckOptions struct {
	// SuperblockOnly stops after the superblock.
	SuperblockOnly bool
}

// Check verifies a metadata image the way thin_check does, and more
// strictly: the superblock's magic and location, every node's checksum,
// shape, key order and key ranges, every mapping's data block against the
// data device size, every device against both trees, and every reference
// count of both space maps against what the trees reach. It never
// modifies the image.
func Check(img *Image, opts CheckOptions) *Report {
	r := &Report{}
	c := &checker{img: img, r: r}
	c.run(opts)
	return r
}

type checker struct {
	img  *Image
	r    *Report
	sb   thinmeta.Superblock
	w    *treeWalker
	data *dataRefs
}

func (c *checker) run(opts CheckOptions) {
	if !c.checkSuperblock() || opts.SuperblockOnly {
		return
	}
	msmRoot := c.sb.MetadataSpaceMapRoot()
	dsmRoot := c.sb.DataSpaceMapRoot()
	c.r.MetadataBlocks = msmRoot.NrBlocks
	c.r.DataBlocks = dsmRoot.NrBlocks
	c.w = newTreeWalker(c.img, c.r, min(msmRoot.NrBlocks, c.img.NrBlocks))
	c.data = newDataRefs(dsmRoot.NrBlocks)
	c.w.refs[thinmeta.SuperblockLocation]++

	c.checkPool("", c.sb)
	if held := c.sb.HeldRoot; held != 0 {
		c.r.MetadataSnap = held
		c.checkMetadataSnap(held)
	}
	msm := c.checkSpaceMap("metadata space map", msmRoot, true)
	dsm := c.checkSpaceMap("data space map", dsmRoot, false)
	if c.w.damaged {
		// Whatever hangs below an unreadable node is uncounted: every
		// comparison would only repeat the damage reported above.
		c.r.warnf("space maps", "reference counts not compared: damaged metadata (see above)")
		return
	}
	if msm != nil {
		c.compareMetadataCounts(msm)
	}
	if dsm != nil {
		c.compareDataCounts(dsm)
	}
}

// checkSuperblock reports on block 0; false if nothing else can be
// trusted.
func (c *checker) checkSuperblock() bool {
	const where = "superblock"
	if c.img.NrBlocks < 2 {
		c.r.errorf(where, "metadata device of %d blocks is too small", c.img.NrBlocks)
		return false
	}
	raw, err := c.img.RawBlock(thinmeta.SuperblockLocation)
	if err != nil {
		c.r.errorAt(0, where, "unreadable: %v", err)
		return false
	}
	want, got := bm.ComputeChecksum(raw, thinmeta.SuperblockCsumXor), bm.StoredChecksum(raw)
	if want != got {
		c.r.errorAt(0, where, "bad checksum: computed %d, stored %d", want, got)
		return false
	}
	s := thinmeta.DecodeSuperblock(raw)
	c.sb = s
	c.r.TransactionID, c.r.Time, c.r.DataBlockSize = s.TransactionID, s.Time, s.DataBlockSize
	if s.Blocknr != 0 {
		c.r.errorAt(0, where, "block number field says %d (Linux refuses the pool)", s.Blocknr)
	}
	if s.Magic != thinmeta.SuperblockMagic {
		c.r.errorAt(0, where, "bad magic %d, wanted %d (Linux refuses the pool)", s.Magic, thinmeta.SuperblockMagic)
	}
	if s.Version != 1 && s.Version != 2 {
		c.r.errorAt(0, where, "unknown metadata version %d", s.Version)
	}
	if s.MetadataBlockSize != thinmeta.MetadataBlockSectors {
		c.r.errorAt(0, where, "metadata block size %d sectors, must be %d", s.MetadataBlockSize, thinmeta.MetadataBlockSectors)
	}
	if err := thinmeta.CheckDataBlockSize(uint64(s.DataBlockSize) * 512); err != nil {
		c.r.errorAt(0, where, "%s", err)
	}
	if s.IncompatFlags != 0 || s.CompatROFlags != 0 {
		c.r.errorAt(0, where, "unsupported feature flags: incompat %#x, compat_ro %#x", s.IncompatFlags, s.CompatROFlags)
	}
	if s.Flags&^thinmeta.FlagNeedsCheck != 0 {
		c.r.warnAt(0, where, "unknown flags %#x", s.Flags)
	}
	if s.Flags&thinmeta.FlagNeedsCheck != 0 {
		c.r.warnAt(0, where, "the needs_check flag is set")
	}
	mr := s.MetadataSpaceMapRoot()
	if mr.NrBlocks > c.img.NrBlocks {
		c.r.errorAt(0, where, "metadata space map covers %d blocks, the device has %d", mr.NrBlocks, c.img.NrBlocks)
		return false
	}
	if mr.NrBlocks > spacemap.MaxMetadataBlocks {
		c.r.errorAt(0, where, "metadata space map of %d blocks exceeds the format's limit %d", mr.NrBlocks, spacemap.MaxMetadataBlocks)
		return false
	}
	if s.HeldRoot >= mr.NrBlocks {
		c.r.errorAt(0, where, "metadata snapshot at block %d beyond the metadata space map", s.HeldRoot)
		s.HeldRoot = 0
		c.sb.HeldRoot = 0
	}
	if dr := s.DataSpaceMapRoot(); dr.NrBlocks > thinmeta.MaxDataBlock+1 {
		c.r.errorAt(0, where, "%d data blocks exceed the 40-bit block numbers of mappings", dr.NrBlocks)
	}
	return true
}

// checkPool walks the details tree and the two-level mapping tree of a
// superblock (the live one, or a metadata snapshot's copy).
func (c *checker) checkPool(view string, s thinmeta.Superblock) {
	details := map[uint64]thinmeta.DeviceDetails{}
	addDetails := func(key uint64, v []byte) { details[key] = thinmeta.DecodeDeviceDetails(v) }
	dt := &treeKind{name: view + "device details tree", valueSize: thinmeta.DeviceDetailsSize, again: addDetails,
		leaf: func(_, key uint64, v []byte) { addDetails(key, v) }}
	c.w.walk(dt, s.DeviceDetailsRoot, true, 0, 0, false, 0)

	// shared marks a device reached through a top-level leaf that an
	// earlier view walked: its mapping tree was walked and counted then.
	type devRoot struct {
		dev, root uint64
		shared    bool
	}
	var devs []devRoot
	top := &treeKind{name: view + "mapping tree (top level)", valueSize: 8,
		leaf: func(_, key uint64, v []byte) {
			devs = append(devs, devRoot{key, binary.LittleEndian.Uint64(v), false})
		},
		again: func(key uint64, v []byte) {
			devs = append(devs, devRoot{key, binary.LittleEndian.Uint64(v), true})
		}}
	if c.w.walk(top, s.DataMappingRoot, true, 0, 0, false, 0) == nil {
		return
	}
	dataBlocks := c.data.nrBlocks
	for _, d := range devs {
		name := fmt.Sprintf("%smapping tree of device %d", view, d.dev)
		dev := d.dev
		bottom := &treeKind{name: name, valueSize: 8, leaf: func(leaf, vblock uint64, v []byte) {
			block, t := thinmeta.UnpackBlockTime(binary.LittleEndian.Uint64(v))
			if block >= dataBlocks {
				c.r.errorAt(leaf, name, "virtual block %d maps to data block %d, beyond the data device (%d blocks)", vblock, block, dataBlocks)
				return
			}
			if t > s.Time {
				c.r.warnAt(leaf, name, "virtual block %d has time %d, after the pool's time %d", vblock, t, s.Time)
			}
			c.data.add(block)
		}}
		var st *nodeState
		if d.shared {
			st = c.w.walked(d.root)
		} else {
			st = c.w.walk(bottom, d.root, true, 0, 0, false, 0)
		}
		det, ok := details[dev]
		if !ok {
			c.r.errorf(name, "device %d has mappings but is missing from the device details tree", dev)
			continue
		}
		delete(details, dev)
		if st == nil || !st.ok {
			continue
		}
		if view == "" {
			c.r.Devices++
			c.r.Mappings += st.entries
		}
		if det.MappedBlocks != st.entries {
			c.r.errorf(name, "device details say %d mapped blocks, the tree holds %d", det.MappedBlocks, st.entries)
		}
		if det.CreationTime > s.Time || det.SnapshottedTime > s.Time {
			c.r.warnf(name, "device times (created %d, snapshotted %d) are after the pool's time %d", det.CreationTime, det.SnapshottedTime, s.Time)
		}
		if dev > thinmeta.MaxDevID {
			c.r.warnf(name, "device id %d is beyond what Linux accepts (%d)", dev, thinmeta.MaxDevID)
		}
	}
	missing := make([]uint64, 0, len(details))
	for dev := range details {
		missing = append(missing, dev)
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	for _, dev := range missing {
		c.r.errorf(view+"device details tree", "device %d has details but no mapping tree", dev)
	}
}

// checkMetadataSnap checks the superblock copy of a held metadata
// snapshot and the trees it keeps alive.
func (c *checker) checkMetadataSnap(held uint64) {
	const where = "metadata snapshot"
	if !c.w.ref(held, where) {
		return
	}
	snap, err := c.img.Superblock(held)
	if err != nil {
		c.r.errorAt(held, where, "superblock copy: %s", describe(err))
		return
	}
	if snap.HeldRoot != 0 {
		c.r.errorAt(held, where, "superblock copy holds a metadata snapshot itself (%d)", snap.HeldRoot)
	}
	c.checkPool("metadata snapshot: ", snap)
}
