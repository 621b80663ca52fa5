package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// poolMaker matches a test's call of a constructor that makes or opens a
// pool for writing; internal/pooltest wraps each, so that the pool is
// checked when the test ends.
var poolMaker = regexp.MustCompile(`\b(thinmeta\.(Create|Open)|thinpool\.Open)\(`)

// inPackageMaker is the same call from thinmeta's own tests.
var inPackageMaker = regexp.MustCompile(`(^|[^.\w])(Create|Open)\(`)

// TestEveryPoolGoesThroughPooltest is the other half of internal/pooltest:
// it fails on a test file that makes a pool without the harness, so no
// pool escapes thind's checker and thin_check. A call that cannot use it
// says why on the same line, after "//pooltest:".
func TestEveryPoolGoesThroughPooltest(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	scanned := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || rel == filepath.Join("internal", "pooltest") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") || rel == filepath.Join("test", "pools_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned++
		src := string(data)
		inThinmeta := strings.HasPrefix(src, "package thinmeta\n")
		for i, line := range strings.Split(src, "\n") {
			code, _, _ := strings.Cut(line, "//")
			if !poolMaker.MatchString(code) && !(inThinmeta && inPackageMaker.MatchString(code) && !strings.HasPrefix(strings.TrimSpace(code), "func ")) {
				continue
			}
			if _, reason, ok := strings.Cut(line, "//pooltest:"); ok && strings.TrimSpace(reason) != "" {
				continue
			}
			t.Errorf("%s:%d makes a pool without internal/pooltest (use its constructors, or say why not after //pooltest:): %s", rel, i+1, strings.TrimSpace(line))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 50 {
		t.Fatalf("only %d test files scanned under %s", scanned, root)
	}
}
