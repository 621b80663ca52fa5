package bioprison

import (
	"errors"
	"testing"
)

func TestKeyValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  Key
		ok   bool
	}{
		{"a single block is valid", BlockKey(Virtual, 1, 7), true},
		{"a full aligned window is valid", Key{Data, 0, 1024, 2048}, true},
		{"the last block of a window is valid", Key{Data, 0, 1023, 1024}, true},
		{"the top block of the space is valid", Key{Virtual, 0, 1<<64 - 2, 1<<64 - 1}, true},
		{"an empty range is refused", Key{Virtual, 1, 5, 5}, false},
		{"a reversed range is refused", Key{Virtual, 1, 6, 5}, false},
		{"more than MaxRange blocks are refused", Key{Data, 0, 0, 1025}, false},
		{"a range crossing a window boundary is refused", Key{Data, 0, 1023, 1025}, false},
		{"a short range crossing a boundary is refused", Key{Data, 0, 2047, 2049}, false},
		{"a window-sized range off alignment is refused", Key{Data, 0, 1, 1025}, false},
		{"the zero space is refused", Key{0, 0, 0, 1}, false},
		{"an unknown space is refused", Key{Space(9), 0, 0, 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.key.Validate()
			if tc.ok {
				if err != nil {
					t.Fatalf("Validate(%v) = %v, want nil", tc.key, err)
				}
				return
			}
			var ke *KeyError
			if !errors.As(err, &ke) || !errors.Is(err, ErrInvalidKey) || ke.Key != tc.key {
				t.Fatalf("Validate(%v) = %v, want a *KeyError for the key matching ErrInvalidKey", tc.key, err)
			}
		})
	}
}

func TestKeyOverlaps(t *testing.T) {
	for _, tc := range []struct {
		name    string
		a, b    Key
		overlap bool
	}{
		{"the same block collides", BlockKey(Virtual, 1, 5), BlockKey(Virtual, 1, 5), true},
		{"a range collides with a block inside it", Key{Virtual, 1, 0, 8}, BlockKey(Virtual, 1, 7), true},
		{"partly overlapping ranges collide", Key{Data, 2, 0, 8}, Key{Data, 2, 7, 9}, true},
		{"adjacent ranges do not collide", Key{Data, 2, 0, 8}, Key{Data, 2, 8, 9}, false},
		{"disjoint ranges do not collide", Key{Data, 2, 0, 8}, Key{Data, 2, 100, 200}, false},
		{"other devices do not collide", BlockKey(Virtual, 1, 5), BlockKey(Virtual, 2, 5), false},
		{"other spaces do not collide", BlockKey(Virtual, 1, 5), BlockKey(Data, 1, 5), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Overlaps(tc.b); got != tc.overlap {
				t.Fatalf("%v.Overlaps(%v) = %v, want %v", tc.a, tc.b, got, tc.overlap)
			}
			if got := tc.b.Overlaps(tc.a); got != tc.overlap {
				t.Fatalf("%v.Overlaps(%v) = %v, want %v", tc.b, tc.a, got, tc.overlap)
			}
			// before is the order the regions search by: colliding keys
			// are neither before nor after each other.
			unordered := !before(&tc.a, &tc.b) && !before(&tc.b, &tc.a)
			if unordered != tc.overlap {
				t.Fatalf("before(%v, %v) disagrees with Overlaps", tc.a, tc.b)
			}
		})
	}
}

func TestMaxRangeShiftMatchesMaxRange(t *testing.T) {
	if 1<<maxRangeShift != MaxRange {
		t.Fatalf("1<<%d != MaxRange %d", maxRangeShift, MaxRange)
	}
}
