package thinxml

import (
	"bytes"
	"io"

	"github.com/thind-storage/thind/metastream"
)

// Parse reads a thin_dump XML document from r and streams it into em,
// without holding the document or allocating per mapping; only the
// mappings of <def> elements are kept, until the end. The package
// documentation lists what it accepts, what it refuses and where it is
// stricter than thin_restore 0.9.0.
//
// Errors are *ParseError values naming line and column. EndSuperblock is
// called only once the rest of the input has been read and found clean,
// so an Emitter may commit there: if Parse fails, it has not been called.
func Parse(r io.Reader, em metastream.Emitter) error {
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
	inDef                          // inside <def>, between mappings
	inMapping                      // after a mapping's or <ref>'s start tag, before its end tag
	inEpilog                       // after </superblock>
)

// maxSharedRuns bounds the mapping runs held for <def> elements, so that
// a hostile document cannot make Parse hold unbounded memory (32 bytes a
// run: 128 MiB). A variable for tests.
var maxSharedRuns = 1 << 22

type parser struct {
	lexer
	em    metastream.Emitter
	state parseState

	docStart  int64      // input offset of the document (after a byte order mark)
	mapEl     element    // the open leaf element, in state inMapping
	mapParent parseState // the state its end tag returns to
	openLine  [inEpilog]int

	// Shared mappings: the runs of each <def> by name, the one being
	// read, and how many runs are held in all.
	defs       map[string][]metastream.Mapping
	def        string
	sharedRuns int

	// Attributes of the tag being scanned.
	vals    [8]uint64
	seen    uint16
	text    string              // the text attribute: the superblock's uuid, a name
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
	case inDef:
		return elDef
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
	case elDef:
		p.state = inSuperblock
	default:
		p.state = p.mapParent
	}
	return nil
}

func (p *parser) unknownElement(lt int, name []byte) error {
	return p.errAt(lt, nil, "unknown element <%s>", name)
}

// checkPlacement checks that el may start here.
func (p *parser) checkPlacement(lt int, el element) error {
	switch {
	case p.state == inEpilog:
		return p.errAt(lt, nil, "trailing garbage <%s> after </superblock>", el)
	case p.state == inMapping && p.mapEl == elRef:
		return p.errAt(lt, nil, "<%s> inside <ref> opened at line %d: <ref> has no content", el, p.openLine[inMapping])
	case p.state == inMapping:
		return p.errAt(lt, nil, "<%s> inside <%s> opened at line %d: mappings have no content", el, p.mapEl, p.openLine[inMapping])
	case el == elSuperblock && p.state != inProlog:
		return p.errAt(lt, nil, "<superblock> inside <%s> opened at line %d", p.openElement(), p.openLine[p.state])
	case (el == elDevice || el == elDef) && p.state == inProlog:
		return p.errAt(lt, nil, "<%s> outside <superblock>", el)
	case (el == elDevice || el == elDef) && p.state != inSuperblock:
		return p.errAt(lt, nil, "<%s> inside <%s> opened at line %d", el, p.openElement(), p.openLine[p.state])
	case el.isMapping() && p.state != inDevice && p.state != inDef:
		return p.errAt(lt, nil, "<%s> outside <device> and <def>", el)
	case el == elRef && p.state != inDevice:
		return p.errAt(lt, nil, "<ref> outside <device>: only devices refer to shared mappings")
	}
	return nil
}
