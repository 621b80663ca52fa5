// Package test holds thind's end-to-end tests and the checks that span
// packages.
package test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/thind-storage/thind"

// layer ranks thind's packages, lowest first; a package may import only
// packages of a lower layer (STYLE.md §1). Packages not listed are leaves
// that import nothing of thind's.
var layer = map[string]int{
	"bm":                  1,
	"blk/blktest":         2,
	"tm":                  2,
	"btree":               3,
	"spacemap":            4,
	"metastream":          0,
	"devlock":             0,
	"sendstream":          0,
	"thinxml":             1,
	"thinmeta":            5,
	"metatools":           6,
	"bioprison":           1,
	"discard":             1,
	"blk":                 1,
	"nbd/internal/wire":   0,
	"internal/fixture":    0, // test data only
	"internal/invariants": 0,
	"internal/faultdev":   0, // tests only
	"internal/lockorder":  1,
	"internal/tooltest":   0, // tests only
	"nbd":                 1,
	"catalog":             6,
	"thinpool":            7,
	"metrics":             8,
	"daemon":              9,
	"cmd/thind":           10,
}

// TestImportsPointDown fails on an import that goes up or sideways in the
// package graph, as pebble's TestForbiddenImports does.
func TestImportsPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		from, ranked := layer[rel]
		if strings.HasPrefix(rel, "test") || strings.Contains(rel, "/internal/") || strings.HasSuffix(rel, "test") {
			continue // tests and test helpers may use anything
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			to := strings.TrimPrefix(imp, module+"/")
			toLayer, ok := layer[to]
			if !ok {
				t.Errorf("%s imports %s, which has no place in the package graph (add it to layer)", rel, to)
				continue
			}
			if !ranked {
				t.Errorf("%s imports %s but has no place in the package graph (add it to layer)", rel, to)
				continue
			}
			if toLayer >= from {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must point down", rel, from, to, toLayer)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no imports checked")
	}
}
