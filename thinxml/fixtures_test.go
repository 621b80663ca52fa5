package thinxml

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/thind-storage/thind/internal/fixture"
)

var fixtureDir = fixture.Dir()

// fixtures returns the paths of every XML fixture: thin_dump outputs
// (*.xml, *.snap.xml, *.repair.xml) and thin_restore inputs (*.in.xml).
func fixtures(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(fixtureDir, "*.xml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures in %s: %v", fixtureDir, err)
	}
	return paths
}

// dumpFailed reports whether the fixture's NAME.dump records that
// thin_dump exited 1 while writing this file, leaving it incomplete.
func dumpFailed(t testing.TB, path string) bool {
	name := filepath.Base(path)
	stem := strings.TrimSuffix(strings.TrimSuffix(name, ".xml"), ".repair")
	log, err := os.ReadFile(filepath.Join(fixtureDir, stem+".dump"))
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	// Blocks of "$ command > FILE" followed by its output and "exit code: N".
	inBlock := false
	for _, line := range strings.Split(string(log), "\n") {
		switch {
		case strings.HasPrefix(line, "$ "):
			inBlock = strings.HasSuffix(line, "> "+name)
		case inBlock && strings.HasPrefix(line, "exit code: "):
			return line != "exit code: 0"
		}
	}
	t.Fatalf("%s.dump does not record the command that wrote %s", stem, name)
	return false
}

// TestFixturesRoundTrip parses every fixture and writes it back: the
// output must equal the input byte for byte, which checks the parser and
// the writer (including its coalescing) against real thin_dump 0.9.0 output.
func TestFixturesRoundTrip(t *testing.T) {
	for _, path := range fixtures(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			doc, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			events, err := parseEvents(doc)
			var out []byte
			if dumpFailed(t, path) {
				// thin_dump stopped part way: the document is cut short
				// and must be refused, but what it did print must be what
				// the Writer prints for the same calls, then Flush.
				if err == nil {
					t.Fatal("truncated document parsed without error")
				}
				t.Logf("refused as expected: %v", err)
				var buf bytes.Buffer
				w := NewWriter(&buf)
				if err := replay(events, w); err != nil {
					t.Fatal(err)
				}
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
				out = buf.Bytes()
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if out, err = writeEvents(events); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(out, doc) {
				t.Fatalf("written document differs from the fixture at %s", firstDiffLine(out, doc))
			}
		})
	}
}

// TestFixturesSlowReaders parses every fixture through readers that return
// one byte or half the request at a time, so that every token is split
// across refills somewhere, and expects the same events.
func TestFixturesSlowReaders(t *testing.T) {
	for _, path := range fixtures(t) {
		doc, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if dumpFailed(t, path) || len(doc) > 200<<10 {
			continue // one-byte reads of the large fixtures take too long under -race
		}
		want, err := parseEvents(doc)
		if err != nil {
			t.Fatal(err)
		}
		for name, r := range map[string]func() *recorder{
			"one byte": func() *recorder {
				var rec recorder
				if err := Parse(iotest.OneByteReader(bytes.NewReader(doc)), &rec); err != nil {
					t.Fatal(err)
				}
				return &rec
			},
			"half": func() *recorder {
				var rec recorder
				if err := Parse(iotest.HalfReader(bytes.NewReader(doc)), &rec); err != nil {
					t.Fatal(err)
				}
				return &rec
			},
			"data with EOF": func() *recorder {
				var rec recorder
				if err := Parse(iotest.DataErrReader(bytes.NewReader(doc)), &rec); err != nil {
					t.Fatal(err)
				}
				return &rec
			},
		} {
			if d := diffEvents(r().events, want); d != "" {
				t.Errorf("%s, %s reader: %s", filepath.Base(path), name, d)
			}
		}
	}
}
