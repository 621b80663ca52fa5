package thinxml

import (
	"math"

	"github.com/thind-storage/thind/metastream"
)

// Start tags carry all the data: their attributes are scanned straight
// from the buffer into p.vals by slot (see elements.go), checked, and
// passed to the Emitter as one value.

// startTag handles "<name attr=value ...>" and "<name .../>".
func (p *parser) startTag(lt int) error {
	b := p.buf[:p.end]
	i := lt + 1
	for i < len(b) && isNameByte(b[i]) {
		i++
	}
	if i == len(b) {
		return errMore
	}
	el := lookupElement(b[lt+1 : i])
	if el == elNone {
		return p.unknownElement(lt, b[lt+1:i])
	}
	if err := p.checkPlacement(lt, el); err != nil {
		return err
	}
	specs := attrSpecs[el]
	p.seen = 0
	if len(p.unknown) > 0 {
		clear(p.unknown)
	}
	if el == elSuperblock {
		p.vals[sbFlags], p.vals[sbVersion], p.vals[sbMetadataSnap] = 0, 1, 0
	}
	hint := 0
	for {
		j := p.skipSpace(i)
		if j == len(b) {
			return errMore
		}
		if c := b[j]; c == '>' || c == '/' {
			return p.endOfStartTag(lt, el, j)
		}
		if j == i || !isNameStart(b[j]) {
			return p.errAt(j, nil, "unexpected character %q in <%s> tag", b[j], el)
		}
		k := j
		for k < len(b) && isNameByte(b[k]) {
			k++
		}
		name := b[j:k]
		k = p.skipSpace(k)
		if k == len(b) {
			return errMore
		}
		if b[k] != '=' {
			return p.errAt(k, nil, "<%s> attribute %s: expected '='", el, name)
		}
		k = p.skipSpace(k + 1)
		if k == len(b) {
			return errMore
		}
		if b[k] != '"' && b[k] != '\'' {
			return p.errAt(k, nil, "<%s> attribute %s: value must be quoted", el, name)
		}
		slot := findAttr(specs, name, hint)
		var err error
		if slot < 0 {
			i, err = p.unknownAttr(j, k, el, name)
		} else {
			if p.seen&(1<<slot) != 0 {
				return p.errAt(j, nil, "<%s> has attribute %s twice", el, name)
			}
			p.seen |= 1 << slot
			hint = slot + 1
			i, err = p.attr(k, el, specs[slot], slot)
		}
		if err != nil {
			return err
		}
	}
}

// attr scans the value at q (its opening quote) into p.vals[slot] (or
// p.text) and returns the index after the closing quote. Plain decimal
// values are read straight from the buffer; anything else (references,
// spaces, errors) goes through attrValue.
func (p *parser) attr(q int, el element, spec attrSpec, slot int) (int, error) {
	b := p.buf[:p.end]
	if spec.bits != 0 {
		var v uint64
		i := q + 1
		for ; i < len(b); i++ {
			d := b[i] - '0'
			if d > 9 || v > (math.MaxUint64-9)/10 {
				break // leave overflow checks to the slow path
			}
			v = v*10 + uint64(d)
		}
		if i == len(b) {
			return 0, errMore
		}
		if b[i] == b[q] && i > q+1 && (spec.bits == 64 || v <= math.MaxUint32) {
			p.vals[slot] = v
			return i + 1, nil
		}
	}
	next, err := p.attrValue(q, spec.name)
	if err != nil {
		return 0, err
	}
	if spec.bits == 0 {
		p.text = string(p.val)
		return next, nil
	}
	v, why := parseUint(p.val)
	if why == "" && spec.bits == 32 && v > math.MaxUint32 {
		why = "does not fit in 32 bits"
	}
	if why != "" {
		return 0, p.errAt(q, nil, "<%s> attribute %s=%q: %s", el, spec.name, p.val, why)
	}
	p.vals[slot] = v
	return next, nil
}

// unknownAttr checks and skips the value of an attribute the format does
// not have; thin_restore 0.9.0 ignores such attributes. Their names go in
// a set, not a list: a tag of up to maxTagSize bytes can hold 100,000.
func (p *parser) unknownAttr(at, q int, el element, name []byte) (int, error) {
	if _, dup := p.unknown[string(name)]; dup {
		return 0, p.errAt(at, nil, "<%s> has attribute %s twice", el, name)
	}
	next, err := p.attrValue(q, string(name))
	if err != nil {
		return 0, err
	}
	if p.unknown == nil {
		p.unknown = make(map[string]struct{})
	}
	p.unknown[string(name)] = struct{}{}
	return next, nil
}

// endOfStartTag finishes a start tag whose attributes are scanned; gt is
// the index of its '>' or of the '/' of "/>".
func (p *parser) endOfStartTag(lt int, el element, gt int) error {
	empty := p.buf[gt] == '/'
	if empty {
		if gt+1 == p.end {
			return errMore
		}
		if p.buf[gt+1] != '>' {
			return p.errAt(gt, nil, "expected '>' after '/' in <%s> tag", el)
		}
		gt++
	}
	if missing := requiredMask[el] &^ p.seen; missing != 0 {
		for i, s := range attrSpecs[el] {
			if missing&(1<<i) != 0 {
				return p.errAt(lt, nil, "<%s> is missing attribute %s", el, s.name)
			}
		}
	}
	if el == elRange {
		m := metastream.Mapping{Origin: p.vals[mapOrigin], Data: p.vals[mapData], Len: p.vals[rangeLength]}
		if why := m.Invalid(); why != "" {
			return p.errAt(lt, nil, "<range_mapping> %s", why)
		}
	}
	p.pos = gt + 1
	switch {
	case el == elDef:
		return p.beginDef(lt, empty)
	case el.isLeaf():
		return p.leaf(lt, el, empty)
	}
	if err := p.emit(lt, el, empty); err != nil {
		return p.errAt(lt, err, "")
	}
	return nil
}

// emit passes a complete, checked <superblock> or <device> start tag to the
// Emitter and enters the element. It returns the Emitter's error, for the
// caller to position.
func (p *parser) emit(lt int, el element, empty bool) error {
	v := &p.vals
	switch el {
	case elSuperblock:
		p.openLine[inSuperblock] = p.lineAt(lt)
		p.state = inSuperblock
		if empty {
			p.state = inEpilog
		}
		return p.em.BeginSuperblock(metastream.Superblock{
			UUID:          p.text,
			Time:          uint32(v[sbTime]),
			Transaction:   v[sbTransaction],
			Flags:         uint32(v[sbFlags]),
			Version:       uint32(v[sbVersion]),
			DataBlockSize: uint32(v[sbDataBlockSize]),
			NrDataBlocks:  v[sbNrDataBlocks],
			MetadataSnap:  v[sbMetadataSnap],
		})
	case elDevice:
		p.openLine[inDevice] = p.lineAt(lt)
		p.state = inDevice
		err := p.em.BeginDevice(metastream.Device{
			DevID:        uint32(v[devID]),
			MappedBlocks: v[devMappedBlocks],
			Transaction:  v[devTransaction],
			CreationTime: uint32(v[devCreationTime]),
			SnapTime:     uint32(v[devSnapTime]),
		})
		if err != nil || !empty {
			return err
		}
		p.state = inSuperblock
		return p.em.EndDevice()
	}
	return nil
}

// leaf handles a mapping or a <ref>: a device's mapping goes to the
// Emitter, a <def>'s is kept, a <ref> replays its definition.
func (p *parser) leaf(lt int, el element, empty bool) error {
	parent := p.state
	if !empty {
		p.openLine[inMapping] = p.lineAt(lt)
		p.state, p.mapEl, p.mapParent = inMapping, el, parent
	}
	if el == elRef {
		return p.replay(lt)
	}
	v := &p.vals
	m := metastream.Mapping{Origin: v[mapOrigin], Data: v[mapData], Len: 1, Time: uint32(v[singleTime])}
	if el == elRange {
		m.Len, m.Time = v[rangeLength], uint32(v[rangeTime])
	}
	if parent == inDef {
		return p.keep(lt, m)
	}
	if err := p.em.Map(m); err != nil {
		return p.errAt(lt, err, "")
	}
	return nil
}
