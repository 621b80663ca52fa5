package thinxml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"
)

// The lexer is a window over the input that the parser scans in place.
// Every token (a tag, a run of whitespace) is scanned straight from the
// buffer; a scanner that runs off the end of the buffered bytes returns
// errMore, the parser refills (keeping the bytes from the token's start on)
// and scans the token again. Nothing is copied per token and nothing is
// allocated except for the few values that become strings (the uuid).

const (
	readBufSize = 64 << 10
	// maxTagSize bounds the buffer: a tag (or any one token the parser
	// needs whole) longer than this is rejected rather than buffered.
	maxTagSize = 1 << 20
	// maxZeroReads guards against an io.Reader that returns 0, nil forever.
	maxZeroReads = 100
)

var (
	// errMore: the token being scanned continues past the buffered input.
	errMore = errors.New("thinxml: need more input")
	// errTooLong: a token does not fit in maxTagSize.
	errTooLong = errors.New("thinxml: token too long")
)

type lexer struct {
	r    io.Reader
	buf  []byte
	pos  int   // start of the token being scanned
	end  int   // buf[:end] holds input
	eof  bool  // r has returned io.EOF; buf[:end] is all there is
	base int64 // input offset of buf[0]

	// Line bookkeeping, used only to position messages. Counting newlines
	// is deferred until a position is asked for, so the hot path never
	// counts: (zeroLine, zeroLineStart) describe buf[0], and the mark
	// caches the last position asked for so that positions asked for in
	// increasing order cost one pass over the input in total.
	zeroLine      int   // newlines before buf[0]
	zeroLineStart int64 // input offset where buf[0]'s line starts
	markIdx       int
	markLine      int
	markLineStart int64

	val []byte // scratch for decoded attribute values
}

// fill reads more input, discarding buf[:pos] first. It reads until the
// buffer is full or the input ends, so that a slow io.Reader (a pipe, a
// one-byte reader) does not make the parser rescan tokens for every byte.
func (l *lexer) fill() error {
	if l.pos > 0 {
		l.advanceMark(l.pos)
		l.zeroLine, l.zeroLineStart = l.markLine, l.markLineStart
		l.end = copy(l.buf, l.buf[l.pos:l.end])
		l.base += int64(l.pos)
		l.pos, l.markIdx = 0, 0
	}
	if l.end == len(l.buf) {
		if len(l.buf) >= maxTagSize {
			return errTooLong
		}
		nb := make([]byte, min(2*len(l.buf), maxTagSize))
		copy(nb, l.buf[:l.end])
		l.buf = nb
	}
	for zero := 0; l.end < len(l.buf); {
		n, err := l.r.Read(l.buf[l.end:])
		l.end += n
		switch {
		case err == io.EOF:
			l.eof = true
			return nil
		case err != nil:
			return err
		case n > 0:
			zero = 0
		default:
			if zero++; zero >= maxZeroReads {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}

// advanceMark moves the line mark to buffer index i.
func (l *lexer) advanceMark(i int) {
	if i < l.markIdx {
		l.markIdx, l.markLine, l.markLineStart = 0, l.zeroLine, l.zeroLineStart
	}
	span := l.buf[l.markIdx:i]
	if n := bytes.Count(span, []byte{'\n'}); n > 0 {
		l.markLine += n
		l.markLineStart = l.base + int64(l.markIdx+bytes.LastIndexByte(span, '\n')+1)
	}
	l.markIdx = i
}

// lineAt returns the 1-based line of buffer index i.
func (l *lexer) lineAt(i int) int {
	l.advanceMark(i)
	return l.markLine + 1
}

// errAt returns a ParseError positioned at buffer index i.
func (l *lexer) errAt(i int, err error, format string, args ...any) *ParseError {
	l.advanceMark(i)
	off := l.base + int64(i)
	return &ParseError{
		Line:   l.markLine + 1,
		Column: int(off-l.markLineStart) + 1,
		Offset: off,
		Msg:    fmt.Sprintf(format, args...),
		Err:    err,
	}
}

// skipSpace returns the index of the first non-space byte at or after i,
// or l.end.
func (l *lexer) skipSpace(i int) int {
	b := l.buf[:l.end]
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipPast consumes input up to and including delim, starting at buffer
// index from; open is the index of the construct's '<', for the message
// if delim never comes. Unlike tags, comments and processing instructions
// are skipped in a streaming way: their length is not bounded.
func (l *lexer) skipPast(from int, delim string, what string, open int) error {
	var unterminated *ParseError
	for i := from; ; {
		if k := bytes.Index(l.buf[i:l.end], []byte(delim)); k >= 0 {
			l.pos = i + k + len(delim)
			return nil
		}
		if unterminated == nil {
			// Position the message now: the '<' is about to be discarded.
			unterminated = l.errAt(open, nil, "unexpected end of input: %s is not terminated by %q", what, delim)
		}
		if l.eof {
			return unterminated
		}
		// Keep a possible prefix of delim.
		l.pos = max(i, l.end-len(delim)+1)
		if err := l.fill(); err != nil {
			return l.errAt(l.pos, err, "reading input")
		}
		i = l.pos
	}
}

// attrValue scans the quoted value starting at buffer index q (the quote)
// and decodes it into l.val: references replaced, literal tab, newline and
// carriage return (and CR LF) normalised to a space as an XML parser must,
// characters validated. It returns the index after the closing quote.
func (l *lexer) attrValue(q int, attr string) (int, error) {
	quote := l.buf[q]
	k := bytes.IndexByte(l.buf[q+1:l.end], quote)
	if k < 0 {
		return 0, errMore
	}
	raw := l.buf[q+1 : q+1+k]
	if bad := badText(raw); bad >= 0 {
		return 0, l.errAt(q+1+bad, nil, "attribute %s: invalid character (not UTF-8 or not allowed in XML)", attr)
	}
	v := l.val[:0]
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '<':
			return 0, l.errAt(q+1+i, nil, "attribute %s: '<' is not allowed in an attribute value", attr)
		case '&':
			semi := bytes.IndexByte(raw[i:], ';')
			if semi < 0 {
				return 0, l.errAt(q+1+i, nil, "attribute %s: '&' does not start a reference ending in ';'", attr)
			}
			r, ok := decodeRef(raw[i+1 : i+semi])
			if !ok {
				return 0, l.errAt(q+1+i, nil, "attribute %s: unknown or invalid reference %q", attr, raw[i:i+semi+1])
			}
			v = utf8.AppendRune(v, r)
			i += semi
		case '\r':
			if i+1 < len(raw) && raw[i+1] == '\n' {
				i++
			}
			v = append(v, ' ')
		case '\t', '\n':
			v = append(v, ' ')
		default:
			v = append(v, c)
		}
	}
	l.val = v
	return q + 1 + k + 1, nil
}

// decodeRef decodes the body of a reference (between '&' and ';'): one of
// the five predefined entities or a character reference to an XML
// character. DTD-defined entities do not exist here (DOCTYPE is refused).
func decodeRef(ref []byte) (rune, bool) {
	switch string(ref) {
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "amp":
		return '&', true
	case "apos":
		return '\'', true
	case "quot":
		return '"', true
	}
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	digits, base := ref[1:], rune(10)
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if len(digits) == 0 {
		return 0, false
	}
	var r rune
	for _, c := range digits {
		d := rune(hexDigit(c))
		if d >= base {
			return 0, false
		}
		if r = r*base + d; r > utf8.MaxRune {
			return 0, false
		}
	}
	return r, isXMLChar(r)
}

// hexDigit returns the value of a hexadecimal digit, or 255.
func hexDigit(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 255
}

// parseUint parses an unsigned decimal number: digits only, as
// thin_restore's lexical_cast needs, except that a sign is refused
// (lexical_cast would wrap "-1" around). why is "" on success.
func parseUint(s []byte) (v uint64, why string) {
	if len(s) == 0 {
		return 0, "empty value"
	}
	for _, c := range s {
		d := c - '0'
		if d > 9 {
			return 0, "not an unsigned decimal number"
		}
		if v > (math.MaxUint64-uint64(d))/10 {
			return 0, "does not fit in 64 bits"
		}
		v = v*10 + uint64(d)
	}
	return v, ""
}

// isSpace reports whether c is XML white space.
func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// isNameStart and isNameByte approximate XML's Name production: ASCII
// letters, '_' and ':' start a name, digits, '-' and '.' may follow, and
// any non-ASCII byte is taken as part of a name. Only the fixed ASCII
// names of this format are ever accepted, so the approximation matters
// only for where an error is reported.
func isNameStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == ':' || c >= utf8.RuneSelf
}

func isNameByte(c byte) bool {
	return isNameStart(c) || '0' <= c && c <= '9' || c == '-' || c == '.'
}
