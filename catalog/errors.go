package catalog

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is returned for a volume name or device id the catalog
	// does not hold.
	ErrNotFound = errors.New("no such volume")
	// ErrExists is returned when creating a volume whose name is taken.
	ErrExists = errors.New("volume already exists")
	// ErrInvalid is returned for a name, size, label or description the
	// catalog refuses; the wrapping error names the field.
	ErrInvalid = errors.New("invalid volume field")
	// ErrCorrupt is returned when stored bytes do not decode, or when the
	// catalog's own records contradict each other.
	ErrCorrupt = errors.New("catalog corrupt")
	// ErrNeedsReconcile is returned by every change until Reconcile has
	// succeeded since Open, and again after an operation failed in a way
	// that left its outcome for Reconcile to decide.
	ErrNeedsReconcile = errors.New("catalog needs reconcile")
	// ErrDiverged is returned when the metadata's transaction id cannot be
	// explained by the catalog's pending intent: something else changed
	// the transaction id while an operation was under way.
	ErrDiverged = errors.New("catalog and thin metadata transaction ids diverged")
	// ErrNoDeviceID is returned when every thin device id is in use.
	ErrNoDeviceID = errors.New("no free thin device id")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("catalog closed")
)

// CorruptError reports a stored value or key that does not decode. It
// matches ErrCorrupt with errors.Is.
type CorruptError struct {
	Key string // the pebble key, printable (keys are ASCII by construction)
	Err error  // what is wrong with it
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("catalog key %q: %v", e.Key, e.Err)
}

// Unwrap returns the decoding error.
func (e *CorruptError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corrupt(key []byte, err error) error {
	return &CorruptError{Key: string(key), Err: err}
}

// InvalidError reports a caller's value the catalog refuses. It matches
// ErrInvalid with errors.Is.
type InvalidError struct {
	Field  string // "name", "size", "labels", "label", "description"
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("%s: %v: %s", e.Field, ErrInvalid, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
