package thinxml

import "unicode/utf8"

// The uuid attribute is the only free text in a document. thin_dump 0.9.0
// always prints it empty, so these rules only matter for round trips: the
// writer escapes what an XML parser would otherwise change or reject, and
// Parse refuses values the writer could not print back.

// isXMLChar reports whether r is allowed in an XML 1.0 document (the Char
// production). Everything else, even as a character reference, is an error.
func isXMLChar(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return true
	case r < 0x20:
		return false
	case r <= 0xD7FF:
		return true
	case r < 0xE000:
		return false
	case r <= 0xFFFD:
		return true
	case r < 0x10000:
		return false
	}
	return r <= utf8.MaxRune
}

// badText returns the byte offset of the first character of s that is
// invalid UTF-8 or not an XML character, or -1 if there is none.
func badText(s []byte) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if (r == utf8.RuneError && n == 1) || !isXMLChar(r) {
			return i
		}
		i += n
	}
	return -1
}

// appendAttrValue appends s escaped for a double-quoted attribute value.
// Tab, newline and carriage return become character references because a
// parser normalises them to spaces when they appear literally.
func appendAttrValue(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		case '\t':
			dst = append(dst, "&#9;"...)
		case '\n':
			dst = append(dst, "&#10;"...)
		case '\r':
			dst = append(dst, "&#13;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
