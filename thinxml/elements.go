package thinxml

// The elements of the format and their attributes, as thin_restore 0.9.0
// reads them (thin-provisioning/xml_format.cc), plus <def> and <ref> of the
// 1.x format. A table per element keeps the attribute rules in one place
// for the parser.

type element uint8

const (
	elNone element = iota
	elSuperblock
	elDevice
	elSingle
	elRange
	elDef
	elRef
)

var elementNames = [...]string{
	elNone:       "",
	elSuperblock: "superblock",
	elDevice:     "device",
	elSingle:     "single_mapping",
	elRange:      "range_mapping",
	elDef:        "def",
	elRef:        "ref",
}

func (el element) String() string { return elementNames[el] }

func lookupElement(name []byte) element {
	switch string(name) {
	case "superblock":
		return elSuperblock
	case "device":
		return elDevice
	case "single_mapping":
		return elSingle
	case "range_mapping":
		return elRange
	case "def":
		return elDef
	case "ref":
		return elRef
	}
	return elNone
}

// isMapping reports whether el is one of the two mapping elements.
func (el element) isMapping() bool { return el == elSingle || el == elRange }

// isLeaf reports whether el has no content: a mapping or a <ref>.
func (el element) isLeaf() bool { return el.isMapping() || el == elRef }

type attrSpec struct {
	name     string
	bits     uint8 // 32 or 64: the width the value must fit in; 0 = text
	required bool
}

// Slots of each element's attributes, in thin_dump's printing order; the
// parser tries the next slot in this order first.
const (
	sbUUID = iota
	sbTime
	sbTransaction
	sbFlags
	sbVersion
	sbDataBlockSize
	sbNrDataBlocks
	sbMetadataSnap
)

const (
	devID = iota
	devMappedBlocks
	devTransaction
	devCreationTime
	devSnapTime
)

// single_mapping is (origin, data, time), range_mapping is
// (origin, data, length, time).
const (
	mapOrigin   = 0
	mapData     = 1
	singleTime  = 2
	rangeLength = 2
	rangeTime   = 3
)

// <def> and <ref> have a name only.
const sharedName = 0

var attrSpecs = [...][]attrSpec{
	elSuperblock: {
		sbUUID:          {"uuid", 0, true},
		sbTime:          {"time", 32, true},
		sbTransaction:   {"transaction", 64, true},
		sbFlags:         {"flags", 32, false},
		sbVersion:       {"version", 32, false},
		sbDataBlockSize: {"data_block_size", 32, true},
		sbNrDataBlocks:  {"nr_data_blocks", 64, true},
		sbMetadataSnap:  {"metadata_snap", 64, false},
	},
	elDevice: {
		devID:           {"dev_id", 32, true},
		devMappedBlocks: {"mapped_blocks", 64, true},
		devTransaction:  {"transaction", 64, true},
		devCreationTime: {"creation_time", 32, true},
		devSnapTime:     {"snap_time", 32, true},
	},
	elSingle: {
		mapOrigin:  {"origin_block", 64, true},
		mapData:    {"data_block", 64, true},
		singleTime: {"time", 32, true},
	},
	elRange: {
		mapOrigin:   {"origin_begin", 64, true},
		mapData:     {"data_begin", 64, true},
		rangeLength: {"length", 64, true},
		rangeTime:   {"time", 32, true},
	},
	elDef: {sharedName: {"name", 0, true}},
	elRef: {sharedName: {"name", 0, true}},
}

// requiredMask has bit i set for each required attribute slot i of el.
var requiredMask = func() (m [len(attrSpecs)]uint16) {
	for el, specs := range attrSpecs {
		for i, s := range specs {
			if s.required {
				m[el] |= 1 << i
			}
		}
	}
	return m
}()

// findAttr returns the slot of attribute name in specs, or -1. The slot
// after the previous one is tried first, so attributes in thin_dump's
// order cost one comparison each.
func findAttr(specs []attrSpec, name []byte, hint int) int {
	if hint < len(specs) && string(name) == specs[hint].name {
		return hint
	}
	for i := range specs {
		if string(name) == specs[i].name {
			return i
		}
	}
	return -1
}
