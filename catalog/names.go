package catalog

import (
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on what a volume record may hold. They bound every decoder too,
// so that a corrupt length cannot make it allocate without bound.
const (
	// MaxNameLen is the longest volume name in bytes.
	MaxNameLen = 128
	// MaxLabels is the most labels a volume may carry.
	MaxLabels = 64
	// MaxLabelKeyLen and MaxLabelValueLen bound a label in bytes.
	MaxLabelKeyLen   = 128
	MaxLabelValueLen = 256
	// MaxDescriptionLen is the longest description in bytes.
	MaxDescriptionLen = 1024
	// SectorSize is the unit volume sizes must be a multiple of.
	SectorSize = 512
	// MaxSize is the largest volume size: it still fits an int64, so a
	// size can be handed to os.File.Truncate or an NBD size field alike.
	MaxSize = math.MaxInt64 &^ (SectorSize - 1)
)

// OrphanPrefix starts the names Reconcile gives to thin devices that no
// volume names; user volumes may not use it.
const OrphanPrefix = "orphan-"

// OrphanName is the name Reconcile adopts device id under.
func OrphanName(id uint64) string { return fmt.Sprintf("%s%d", OrphanPrefix, id) }

// ValidName reports why name cannot be a volume name, or nil.
//
// A name is 1 to MaxNameLen bytes of lower-case ASCII letters, digits, '.',
// '_' and '-', starting with a letter or digit. That set is safe as an NBD
// export name, a path component, a URL segment and a shell word alike:
// no '/', no NUL, never "." or "..", never an option-like "-x", and
// lower case only so that two volumes cannot collide on a
// case-insensitive file system.
func ValidName(name string) error {
	if name == "" {
		return invalid("name", "empty")
	}
	if len(name) > MaxNameLen {
		return invalid("name", "%d bytes, at most %d", len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return invalid("name", "%q: byte %d (%q) is not a lower-case letter, digit, '.', '_' or '-' (and the first must be a letter or digit)", name, i, c)
		}
	}
	return nil
}

// validUserName is ValidName plus the reserved orphan prefix.
func validUserName(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if strings.HasPrefix(name, OrphanPrefix) {
		return invalid("name", "%q: the prefix %q is reserved for devices adopted by reconcile", name, OrphanPrefix)
	}
	return nil
}

// ValidLabel reports why key=value cannot be a label, or nil. Keys are 1
// to MaxLabelKeyLen bytes of lower-case ASCII letters, digits, '.', '_',
// '-' and '/' (room for "example.com/key" prefixes); values are up to
// MaxLabelValueLen bytes of printable UTF-8.
func ValidLabel(key, value string) error {
	if key == "" || len(key) > MaxLabelKeyLen {
		return invalid("label", "key of %d bytes, want 1 to %d", len(key), MaxLabelKeyLen)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			return invalid("label", "key %q: byte %d (%q) is not a lower-case letter, digit, '.', '_', '-' or '/'", key, i, c)
		}
	}
	if len(value) > MaxLabelValueLen {
		return invalid("label", "%s: value of %d bytes, at most %d", key, len(value), MaxLabelValueLen)
	}
	if err := printable(value, false); err != nil {
		return invalid("label", "%s: value: %v", key, err)
	}
	return nil
}

func validLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return invalid("labels", "%d labels, at most %d", len(labels), MaxLabels)
	}
	for k, v := range labels {
		if err := ValidLabel(k, v); err != nil {
			return err
		}
	}
	return nil
}

// validDescription allows newlines and tabs, but no other control
// characters: descriptions end up in terminals and logs.
func validDescription(d string) error {
	if len(d) > MaxDescriptionLen {
		return invalid("description", "%d bytes, at most %d", len(d), MaxDescriptionLen)
	}
	if err := printable(d, true); err != nil {
		return invalid("description", "%v", err)
	}
	return nil
}

func printable(s string, multiline bool) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	for i, r := range s {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("control character %U at byte %d", r, i)
		}
	}
	return nil
}

// ValidSize reports why size cannot be a volume's size, or nil.
func ValidSize(size uint64) error { return validSize(size) }

// validSize checks a size given by a caller: a whole number of sectors,
// not zero, at most MaxSize.
func validSize(size uint64) error {
	switch {
	case size == 0:
		return invalid("size", "zero")
	case size%SectorSize != 0:
		return invalid("size", "%d bytes is not a multiple of %d", size, SectorSize)
	case size > MaxSize:
		return invalid("size", "%d bytes, at most %d", size, uint64(MaxSize))
	}
	return nil
}

// validSpec checks everything a caller chose for a new volume.
func validSpec(s *Spec) error {
	if err := validUserName(s.Name); err != nil {
		return err
	}
	if err := validSize(s.Size); err != nil {
		return err
	}
	if err := validLabels(s.Labels); err != nil {
		return err
	}
	if err := validAccess(s.Export.Access); err != nil {
		return err
	}
	return validDescription(s.Description)
}
