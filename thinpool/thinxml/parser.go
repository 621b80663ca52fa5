package thinxml

import (
	"bytes"
	"io"
	"math"
)

// Parse reads a thin_dump XML document from r and streams it into em,
// without holding the document or allocating per mapping. The package
// documentation lists what it accepts, what it refuses and where it is
// stricter than thin_restore 0.9.0.
//
// Errors are *ParseError values naming line and column. EndSuperblock is
// called only once the rest of the input has been read and found clean,
// so an Emitter may commit there: if Parse fails, it has not been called.
func Parse(r io.Reader, em Emitter) error {
	p := &parser{em: em}
	p.r = r
	p.buf = make([]byte, readBufSize)
	return p.run()
}

// parseState is where in the document the parser is.
type parseState uint8

const (
	inProlog     parseState = iota // before <superblock>
	inSuperblock                   // inside <superblock>, between devices
	inDevice                       // inside <device>, between mappings
	inMapping                      // after a mapping's start tag, before its end tag
	inEpilog                       // after </superblock>
)

type parser struct {
	lexer
	em    Emitter
	state parseState

	docStart int64   // input offset of the document (after a byte order mark)
	mapEl    element // the open mapping element, in state inMapping
	openLine [inEpilog]int

	// Attributes of the tag being scanned.
	vals    [8]uint64
	seen    uint16
	uuid    string
	unknown map[string]struct{} // names of unknown attributes, to catch duplicates
}

func (p *parser) run() error {
	if err := p.fill(); err != nil {
		return p.errAt(0, err, "reading input")
	}
	if bytes.HasPrefix(p.buf[:p.end], []byte("\xef\xbb\xbf")) {
		p.pos, p.docStart = 3, 3
	}
	for {
		err := p.step()
		if err == nil {
			continue
		}
		if err != errMore {
			return err
		}
		if p.eof {
			return p.finish()
		}
		if err := p.fill(); err != nil {
			if err == errTooLong {
				return p.errAt(p.pos, nil, "token longer than %d bytes", maxTagSize)
			}
			return p.errAt(p.pos, err, "reading input")
		}
	}
}

// finish handles the end of the input.
func (p *parser) finish() error {
	if p.pos < p.end {
		return p.errAt(p.pos, nil, "unexpected end of input in the middle of a tag")
	}
	switch p.state {
	case inProlog:
		return p.errAt(p.pos, nil, "no <superblock> element")
	case inEpilog:
		if err := p.em.EndSuperblock(); err != nil {
			return p.errAt(p.pos, err, "")
		}
		return nil
	}
	open := p.openElement()
	return p.errAt(p.pos, nil, "unexpected end of input: <%s> opened at line %d is not closed", open, p.openLine[p.state])
}

// openElement is the innermost open element in the current state.
func (p *parser) openElement() element {
	switch p.state {
	case inSuperblock:
		return elSuperblock
	case inDevice:
		return elDevice
	case inMapping:
		return p.mapEl
	}
	return elNone
}

// step scans one token at p.pos: white space, a tag, a comment or a
// processing instruction. It returns errMore, with p.pos at the token's
// start, if the token runs past the buffered input.
func (p *parser) step() error {
	i := p.skipSpace(p.pos)
	p.pos = i
	if i == p.end {
		return errMore
	}
	if p.buf[i] != '<' {
		return p.textError(i)
	}
	if i+1 == p.end {
		return errMore
	}
	switch c := p.buf[i+1]; {
	case c == '/':
		return p.endTag(i)
	case c == '!':
		return p.markup(i)
	case c == '?':
		return p.procInst(i)
	case isNameStart(c):
		return p.startTag(i)
	}
	return p.errAt(i, nil, "malformed tag: '<' must be followed by an element name")
}

func (p *parser) textError(i int) error {
	snippet := p.buf[i:min(p.end, i+20)]
	if k := bytes.IndexAny(snippet, "<\n"); k >= 0 {
		snippet = snippet[:k]
	}
	switch p.state {
	case inProlog:
		return p.errAt(i, nil, "text %q before <superblock>", snippet)
	case inEpilog:
		return p.errAt(i, nil, "trailing garbage %q after </superblock>", snippet)
	}
	return p.errAt(i, nil, "text %q inside <%s>: only elements are allowed", snippet, p.openElement())
}

// markup handles "<!": comments are skipped; DOCTYPE and CDATA, which
// would bring entity definitions and text into a format that has neither,
// are refused.
func (p *parser) markup(lt int) error {
	const comment, cdata, doctype = "<!--", "<![CDATA[", "<!DOCTYPE"
	b := p.buf[lt:p.end]
	for _, prefix := range []string{comment, cdata, doctype} {
		n := min(len(b), len(prefix))
		if string(b[:n]) != prefix[:n] {
			continue
		}
		if n < len(prefix) {
			return errMore
		}
		switch prefix {
		case comment:
			return p.skipPast(lt+len(comment), "-->", "comment", lt)
		case cdata:
			return p.errAt(lt, nil, "CDATA section: text is not allowed in this format")
		default:
			return p.errAt(lt, nil, "DOCTYPE is not supported")
		}
	}
	return p.errAt(lt, nil, "malformed markup after '<!'")
}

// procInst skips a processing instruction; the XML declaration
// (<?xml ...?>) is allowed only at the very start of the document.
func (p *parser) procInst(lt int) error {
	i := lt + 2
	for i < p.end && isNameByte(p.buf[i]) {
		i++
	}
	if i == p.end {
		return errMore
	}
	target := p.buf[lt+2 : i]
	switch {
	case len(target) == 0:
		return p.errAt(lt, nil, "malformed processing instruction: no target name")
	case string(target) == "xml" && p.base+int64(lt) == p.docStart:
	case bytes.EqualFold(target, []byte("xml")):
		return p.errAt(lt, nil, "XML declaration is only allowed at the start of the document")
	}
	return p.skipPast(i, "?>", "processing instruction", lt)
}

// endTag handles "</name>".
func (p *parser) endTag(lt int) error {
	i := lt + 2
	for i < p.end && isNameByte(p.buf[i]) {
		i++
	}
	name := p.buf[lt+2 : i]
	i = p.skipSpace(i)
	if i == p.end {
		return errMore
	}
	if p.buf[i] != '>' || len(name) == 0 {
		return p.errAt(lt, nil, "malformed end tag")
	}
	el := lookupElement(name)
	if el == elNone {
		return p.errAt(lt, nil, "unknown element </%s>", name)
	}
	open := p.openElement()
	switch {
	case p.state == inEpilog:
		return p.errAt(lt, nil, "trailing garbage </%s> after </superblock>", name)
	case open == elNone:
		return p.errAt(lt, nil, "</%s> without a matching start tag", name)
	case el != open:
		return p.errAt(lt, nil, "</%s> does not match <%s> opened at line %d", name, open, p.openLine[p.state])
	}
	p.pos = i + 1
	switch el {
	case elSuperblock:
		// EndSuperblock waits for the end of the input: see Parse.
		p.state = inEpilog
	case elDevice:
		p.state = inSuperblock
		if err := p.em.EndDevice(); err != nil {
			return p.errAt(lt, err, "")
		}
	default:
		p.state = inDevice
	}
	return nil
}

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

// unknownElement names the element in the message; <def> and <ref> are
// recognised to say why they are refused.
func (p *parser) unknownElement(lt int, name []byte) error {
	switch string(name) {
	case "def", "ref":
		return p.errAt(lt, nil, "<%s> (shared mappings of thin-provisioning-tools 1.x thin_dump) is not supported: only the 0.9.0 format is", name)
	}
	return p.errAt(lt, nil, "unknown element <%s>", name)
}

// checkPlacement checks that el may start here.
func (p *parser) checkPlacement(lt int, el element) error {
	switch {
	case p.state == inEpilog:
		return p.errAt(lt, nil, "trailing garbage <%s> after </superblock>", el)
	case p.state == inMapping:
		return p.errAt(lt, nil, "<%s> inside <%s> opened at line %d: mappings have no content", el, p.mapEl, p.openLine[inMapping])
	case el == elSuperblock && p.state != inProlog:
		return p.errAt(lt, nil, "<superblock> inside <%s> opened at line %d", p.openElement(), p.openLine[p.state])
	case el == elDevice && p.state == inProlog:
		return p.errAt(lt, nil, "<device> outside <superblock>")
	case el == elDevice && p.state == inDevice:
		return p.errAt(lt, nil, "<device> inside <device> opened at line %d", p.openLine[inDevice])
	case el.isMapping() && p.state != inDevice:
		return p.errAt(lt, nil, "<%s> outside <device>", el)
	}
	return nil
}

// attr scans the value at q (its opening quote) into p.vals[slot] (or
// p.uuid) and returns the index after the closing quote. Plain decimal
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
		p.uuid = string(p.val)
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
		m := Mapping{Origin: p.vals[mapOrigin], Data: p.vals[mapData], Len: p.vals[rangeLength]}
		if why := m.invalid(); why != "" {
			return p.errAt(lt, nil, "<range_mapping> %s", why)
		}
	}
	p.pos = gt + 1
	if err := p.emit(lt, el, empty); err != nil {
		return p.errAt(lt, err, "")
	}
	return nil
}

// emit passes a complete, checked start tag to the Emitter and enters the
// element. It returns the Emitter's error, for the caller to position.
func (p *parser) emit(lt int, el element, empty bool) error {
	v := &p.vals
	switch el {
	case elSuperblock:
		p.openLine[inSuperblock] = p.lineAt(lt)
		p.state = inSuperblock
		if empty {
			p.state = inEpilog
		}
		return p.em.BeginSuperblock(Superblock{
			UUID:          p.uuid,
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
		err := p.em.BeginDevice(Device{
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
	m := Mapping{Origin: v[mapOrigin], Data: v[mapData], Len: 1, Time: uint32(v[singleTime])}
	if el == elRange {
		m.Len, m.Time = v[rangeLength], uint32(v[rangeTime])
	}
	if !empty {
		p.openLine[inMapping] = p.lineAt(lt)
		p.state, p.mapEl = inMapping, el
	}
	return p.em.Map(m)
}
