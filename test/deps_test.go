// Package test holds thind's end-to-end tests and the checks that span
// packages.
package test

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/thind-storage/thind"

// layer ranks thind's packages, lowest first; a package may import only
// packages of a lower layer (docs/architecture.md). Packages not listed are leaves
// that import nothing of thind's.
var layer = map[string]int{
	"bm":                  1,
	"blk/blktest":         2,
	"tm":                  2,
	"btree":               3,
	"spacemap":            4,
	"metastream":          0,
	"control":             0,
	"kernelnbd":           0,
	"kubeapi":             0,
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
	"csi":                 9,
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
		var p listedPackage
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
				t.Errorf("%s (layer %d) imports %s (layer %d) in %s: imports must point down", rel, from, to, toLayer, p.importingFile(imp))
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no imports checked")
	}
}

// forbidden names the edges the design rules out, directly or through
// other packages, each with its reason. The ranking above already forbids
// them; listing them keeps the reasons beside the rule, and a change to
// the ranking cannot quietly allow one.
var forbidden = []struct{ from, to, why string }{
	{"nbd", "thinpool", "nbd serves any nbd.Backend; the daemon adapts a thin device to it"},
	{"thinpool", "nbd", "the engine knows nothing of the protocol; the daemon adapts a thin device to nbd.Backend"},
	{"thinmeta", "thinpool", "the metadata format never depends on the engine"},
	{"catalog", "thinpool", "the catalog depends on the metadata format and small interfaces, not on the engine"},
	{"metrics", "thinpool", "metrics reads plain snapshots that the daemon copies out of the engine"},
	{"metatools", "thinpool", "the offline tools work on the metadata alone, with no engine running"},
	{"thinxml", "thinmeta", "the XML is a stream format (metastream), not the on-disk one"},
}

// TestForbiddenImports fails on any edge of forbidden, naming the file
// that imports it (or the package it comes through).
func TestForbiddenImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]listedPackage{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = p
	}
	for _, f := range forbidden {
		p, ok := pkgs[f.from]
		if !ok {
			t.Errorf("forbidden edge %s -> %s: no package %s", f.from, f.to, f.from)
			continue
		}
		if _, ok := pkgs[f.to]; !ok {
			t.Errorf("forbidden edge %s -> %s: no package %s", f.from, f.to, f.to)
			continue
		}
		target := module + "/" + f.to
		for _, imp := range p.Imports {
			if imp == target {
				t.Errorf("%s imports %s in %s: %s", f.from, f.to, p.importingFile(imp), f.why)
			}
		}
		for _, dep := range p.Deps {
			if dep == target && !contains(p.Imports, target) {
				t.Errorf("%s depends on %s through its imports: %s", f.from, f.to, f.why)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// listedPackage is what go list -json says of a package.
type listedPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

// importingFile names the file of p that imports imp.
func (p listedPackage) importingFile(imp string) string {
	fset := token.NewFileSet()
	for _, name := range p.GoFiles {
		path := filepath.Join(p.Dir, name)
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			continue
		}
		for _, spec := range f.Imports {
			if v, err := strconv.Unquote(spec.Path.Value); err == nil && v == imp {
				return strings.TrimPrefix(filepath.ToSlash(filepath.Join(strings.TrimPrefix(p.ImportPath, module+"/"), name)), "/")
			}
		}
	}
	return "an unknown file"
}
