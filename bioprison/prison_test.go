package bioprison

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/thind-storage/thind/internal/scripttest"
)

// prisonScript runs a transcript of detains and releases against a
// Prison[string] whose inmates are names. Cells are named after the inmate
// that first held them. Commands:
//
//	new [regions=N]
//	detain|try-detain inmate=X (block=B | range=(B,E)) [space=virtual|data] [dev=D]
//	release|release-no-holder|visit-release|error|promote cell=X
//	cells
//	stats
type prisonScript struct {
	p     *Prison[string]
	cells map[string]Cell[string]
}

func TestPrisonScripts(t *testing.T) {
	// A stale handle panics by design: the transcripts show the panics.
	scripttest.Walk(t, "testdata/prison", func(t *testing.T) scripttest.Handler {
		s := &prisonScript{p: New[string](Options{}), cells: map[string]Cell[string]{}}
		return s.run
	})
}

func (s *prisonScript) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "new":
		o := Options{}
		d.MaybeScanArgs(t, "regions", &o.Regions)
		s.p = New[string](o)
		s.cells = map[string]Cell[string]{}
		return fmt.Sprintf("%d regions\n", len(s.p.regions))
	case "detain", "try-detain":
		return s.detain(t, d)
	case "release", "release-no-holder", "visit-release", "error", "promote":
		return s.release(t, d)
	case "cells":
		return s.dump()
	case "stats":
		st := s.p.Stats()
		return fmt.Sprintf("cells=%d waiters=%d\n", st.Cells, st.Waiters)
	default:
		t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
		return ""
	}
}

func scanKey(t *testing.T, d *datadriven.TestData) Key {
	k := Key{Space: Virtual}
	if d.HasArg("space") {
		var sp string
		d.ScanArgs(t, "space", &sp)
		switch sp {
		case "virtual":
			k.Space = Virtual
		case "data":
			k.Space = Data
		default:
			var n uint8
			if _, err := fmt.Sscan(sp, &n); err != nil {
				t.Fatalf("%s: bad space %q", d.Pos, sp)
			}
			k.Space = Space(n)
		}
	}
	d.MaybeScanArgs(t, "dev", &k.Dev)
	if d.HasArg("block") {
		d.ScanArgs(t, "block", &k.Begin)
		k.End = k.Begin + 1
	} else {
		d.ScanArgs(t, "range", &k.Begin, &k.End)
	}
	return k
}

func (s *prisonScript) detain(t *testing.T, d *datadriven.TestData) string {
	var inmate string
	d.ScanArgs(t, "inmate", &inmate)
	k := scanKey(t, d)
	var (
		c    Cell[string]
		held bool
		err  error
	)
	if d.Cmd == "detain" {
		c, held, err = s.p.Detain(k, inmate)
	} else {
		c, held, err = s.p.TryDetain(k, inmate)
	}
	switch {
	case err != nil:
		return fmt.Sprintf("error: %v\n", err)
	case held:
		s.cells[inmate] = c
		return fmt.Sprintf("%s holds %v\n", inmate, k)
	case d.Cmd == "try-detain":
		return "busy\n"
	default:
		return fmt.Sprintf("%s waits in cell %s\n", inmate, s.nameOf(c))
	}
}

func (s *prisonScript) nameOf(c Cell[string]) string {
	for name, x := range s.cells {
		if x == c {
			return name
		}
	}
	return "?"
}

func (s *prisonScript) release(t *testing.T, d *datadriven.TestData) string {
	var name string
	d.ScanArgs(t, "cell", &name)
	c, ok := s.cells[name]
	if !ok {
		t.Fatalf("%s: no cell %q", d.Pos, name)
	}
	var b strings.Builder
	switch d.Cmd {
	case "release":
		fmt.Fprintf(&b, "released %v\n", s.p.Release(c, nil))
	case "release-no-holder":
		fmt.Fprintf(&b, "released %v\n", s.p.ReleaseNoHolder(c, nil))
	case "visit-release":
		s.p.VisitRelease(c, func(w string) { fmt.Fprintf(&b, "visit %s\n", w) })
		b.WriteString("released\n")
	case "error":
		s.p.Error(c, errors.New("EIO"), func(w string, err error) { fmt.Fprintf(&b, "%s: %v\n", w, err) })
	case "promote":
		if h, ok := s.p.PromoteOrRelease(c); ok {
			fmt.Fprintf(&b, "%s now holds cell %s\n", h, name)
			return b.String() // the handle stays valid
		}
		b.WriteString("no waiters: released\n")
	}
	// The handle is stale now, but keep it so scripts can show that using
	// it panics.
	return b.String()
}

// dump lists the live cells in key order, whatever region they are in.
func (s *prisonScript) dump() string {
	var all []*cell[string]
	for i := range s.p.regions {
		all = append(all, s.p.regions[i].cells...)
	}
	if len(all) == 0 {
		return "no cells\n"
	}
	slices.SortFunc(all, func(a, b *cell[string]) int {
		return cmp.Or(cmp.Compare(a.key.Space, b.key.Space), cmp.Compare(a.key.Dev, b.key.Dev), cmp.Compare(a.key.Begin, b.key.Begin))
	})
	var b strings.Builder
	for _, c := range all {
		fmt.Fprintf(&b, "%v holder=%s waiters=%v\n", c.key, c.holder, c.waiters)
	}
	return b.String()
}
