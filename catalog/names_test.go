package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"default", true},
		{"a", true},
		{"0", true},
		{"vm-42.disk_0", true},
		{strings.Repeat("x", MaxNameLen), true},
		{"", false},
		{strings.Repeat("x", MaxNameLen+1), false},
		{"Default", false},   // upper case would collide on case-insensitive file systems
		{"-rf", false},       // looks like an option
		{".hidden", false},   // "." and ".." must be impossible
		{"_x", false},        // first byte must be a letter or digit
		{"a/b", false},       // a path
		{"a b", false},       // a shell word split
		{"a\x00", false},     // NUL
		{"caf\u00e9", false}, // non-ASCII
		{"name:tag", false},  // URL and Windows separators
		{"orphan-7", true},   // a valid name: the prefix is refused only for callers
	}
	for _, tt := range tests {
		err := ValidName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidName(%q) = %v, want ErrInvalid", tt.name, err)
		}
	}
}

func TestUserNamesCannotTakeTheOrphanPrefix(t *testing.T) {
	if err := validUserName("orphan-7"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("validUserName(orphan-7) = %v, want ErrInvalid", err)
	}
	if err := validUserName("orphans"); err != nil {
		t.Fatalf("validUserName(orphans) = %v", err)
	}
}

func TestValidLabel(t *testing.T) {
	tests := []struct {
		k, v string
		ok   bool
	}{
		{"env", "prod", true},
		{"example.com/team", "storage", true},
		{"k", "", true},
		{"k", "caf\u00e9 \u2603", true},
		{"", "v", false},
		{"Env", "v", false},
		{strings.Repeat("k", MaxLabelKeyLen+1), "v", false},
		{"k", strings.Repeat("v", MaxLabelValueLen+1), false},
		{"k", "line\nbreak", false},
		{"k", "\xff", false},
	}
	for _, tt := range tests {
		if err := ValidLabel(tt.k, tt.v); (err == nil) != tt.ok {
			t.Errorf("ValidLabel(%q, %q) = %v, want ok=%v", tt.k, tt.v, err, tt.ok)
		}
	}
}

func TestValidSpec(t *testing.T) {
	good := Spec{Name: "vol", Size: 1 << 20}
	tests := []struct {
		name  string
		edit  func(*Spec)
		field string // "" for a valid spec
	}{
		{"a plain spec is valid", func(*Spec) {}, ""},
		{"a zero size is refused", func(s *Spec) { s.Size = 0 }, "size"},
		{"a size that is not whole sectors is refused", func(s *Spec) { s.Size = 1000 }, "size"},
		{"a size past MaxSize is refused", func(s *Spec) { s.Size = MaxSize + SectorSize }, "size"},
		{"too many labels are refused", func(s *Spec) {
			s.Labels = map[string]string{}
			for i := range MaxLabels + 1 {
				s.Labels[strings.Repeat("k", i+1)] = ""
			}
		}, "labels"},
		{"a description with control bytes is refused", func(s *Spec) { s.Description = "bell\a" }, "description"},
		{"a description may have newlines and tabs", func(s *Spec) { s.Description = "a\n\tb" }, ""},
		{"a long description is refused", func(s *Spec) { s.Description = strings.Repeat("d", MaxDescriptionLen+1) }, "description"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.edit(&s)
			err := validSpec(&s)
			var ie *InvalidError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("validSpec = %v", err)
			case tt.field == "":
			case !errors.Is(err, ErrInvalid) || !errors.As(err, &ie):
				t.Fatalf("validSpec = %v, want an *InvalidError", err)
			case ie.Field != tt.field:
				t.Fatalf("validSpec = %v, want it to name %s, not %s", err, tt.field, ie.Field)
			}
		})
	}
}
