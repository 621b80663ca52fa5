package thinxml

import (
	"errors"
	"fmt"
)

// ParseError is the error Parse returns. It names where in the input the
// problem is, like expat's "Parse error at line N" in thin_restore, but with
// the column and the reason.
//
// For a malformed or invalid document Err is nil and Msg says what is
// wrong. When the input could not be read, or the Emitter returned an error,
// Err is that error (reachable with errors.Is / errors.As) and the position
// is where parsing had got to.
type ParseError struct {
	Line   int   // 1-based line number
	Column int   // 1-based column, counted in bytes
	Offset int64 // 0-based byte offset in the input
	Msg    string
	Err    error
}

func (e *ParseError) Error() string {
	msg := e.Msg
	if e.Err != nil {
		if msg == "" {
			msg = e.Err.Error()
		} else {
			msg += ": " + e.Err.Error()
		}
	}
	return fmt.Sprintf("thinxml: line %d, column %d: %s", e.Line, e.Column, msg)
}

// Unwrap returns the underlying read or Emitter error, if any.
func (e *ParseError) Unwrap() error { return e.Err }

// Errors returned (wrapped) by the Writer; its errors are sticky.
var (
	// ErrSequence: a method was called out of the order the Emitter
	// documents (say, Map outside a device).
	ErrSequence = errors.New("thinxml: emitter call out of sequence")
	// ErrInvalidValue: a value has no XML form that Parse would read back:
	// a run of length 0 or past the last 64-bit block, or a UUID that is
	// not XML text (invalid UTF-8, control characters).
	ErrInvalidValue = errors.New("thinxml: value cannot be written")
)
