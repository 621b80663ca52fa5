package metatools

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/thind-storage/thind/thinmeta"
)

// deltaEmitter prints a delta: the header, each run, the end.
type deltaEmitter interface {
	begin(h DeltaHeader) error
	run(r thinmeta.DeltaRun) error
	end() error
}

// xmlHeader is thin_delta's opening: the superblock it read (with
// metadata_snap only when that superblock holds one) and the diff.
func xmlHeader(w io.Writer, h DeltaHeader) error {
	snap := ""
	if h.MetadataSnap != 0 {
		snap = fmt.Sprintf(" metadata_snap=\"%d\"", h.MetadataSnap)
	}
	_, err := fmt.Fprintf(w, "<superblock uuid=\"\" time=\"%d\" transaction=\"%d\" data_block_size=\"%d\" nr_data_blocks=\"%d\"%s>\n  <diff left=\"%d\" right=\"%d\">\n",
		h.Time, h.Transaction, h.DataBlockSize, h.NrDataBlocks, snap, h.Left, h.Right)
	return err
}

const xmlFooter = "  </diff>\n</superblock>\n"

// deltaSimple is thin_delta's plain form. Its runs are coarser than
// thinmeta's: runs of one kind that follow each other merge whatever
// their data blocks (simple_emitter's add_range).
type deltaSimple struct {
	w   io.Writer
	cur thinmeta.DeltaRun
	has bool
}

func (e *deltaSimple) begin(h DeltaHeader) error { return xmlHeader(e.w, h) }

func (e *deltaSimple) run(r thinmeta.DeltaRun) error {
	if e.has && e.cur.Kind == r.Kind && e.cur.Begin+e.cur.Len == r.Begin {
		e.cur.Len += r.Len
		return nil
	}
	if err := e.flush(); err != nil {
		return err
	}
	e.cur, e.has = r, true
	return nil
}

func (e *deltaSimple) flush() error {
	if !e.has {
		return nil
	}
	e.has = false
	_, err := fmt.Fprintf(e.w, "    <%s begin=\"%d\" length=\"%d\"/>\n", e.cur.Kind, e.cur.Begin, e.cur.Len)
	return err
}

func (e *deltaSimple) end() error {
	if err := e.flush(); err != nil {
		return err
	}
	_, err := io.WriteString(e.w, xmlFooter)
	return err
}

// deltaVerbose is thin_delta --verbose: one range per run with its data
// blocks, consecutive runs of a kind grouped in one element of that kind
// however far apart they are. thinmeta's runs are thin_delta's ranges:
// both end where either device's data blocks stop being contiguous.
type deltaVerbose struct {
	w    io.Writer
	kind thinmeta.DeltaKind
	open bool
}

func (e *deltaVerbose) begin(h DeltaHeader) error { return xmlHeader(e.w, h) }

func (e *deltaVerbose) run(r thinmeta.DeltaRun) error {
	if !e.open || e.kind != r.Kind {
		if err := e.close(); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(e.w, "    <%s>\n", r.Kind); err != nil {
			return err
		}
		e.kind, e.open = r.Kind, true
	}
	var err error
	switch r.Kind {
	case thinmeta.DeltaDifferent:
		_, err = fmt.Fprintf(e.w, "      <range begin=\"%d\" left_data_begin=\"%d\" right_data_begin=\"%d\" length=\"%d\"/>\n", r.Begin, r.LeftData, r.RightData, r.Len)
	case thinmeta.DeltaRightOnly:
		_, err = fmt.Fprintf(e.w, "      <range begin=\"%d\" data_begin=\"%d\" length=\"%d\"/>\n", r.Begin, r.RightData, r.Len)
	default:
		_, err = fmt.Fprintf(e.w, "      <range begin=\"%d\" data_begin=\"%d\" length=\"%d\"/>\n", r.Begin, r.LeftData, r.Len)
	}
	return err
}

func (e *deltaVerbose) close() error {
	if !e.open {
		return nil
	}
	e.open = false
	_, err := fmt.Fprintf(e.w, "    </%s>\n", e.kind)
	return err
}

func (e *deltaVerbose) end() error {
	if err := e.close(); err != nil {
		return err
	}
	_, err := io.WriteString(e.w, xmlFooter)
	return err
}

// deltaJSON streams one object: the header's fields, then "runs", one
// run a line, each with the data blocks of the sides that map it.
type deltaJSON struct {
	w     io.Writer
	first bool
}

// DeltaJSONRun is a run as the JSON output has it.
type DeltaJSONRun struct {
	Kind           string  `json:"kind"`
	Begin          uint64  `json:"begin"`
	Length         uint64  `json:"length"`
	LeftDataBegin  *uint64 `json:"left_data_begin,omitempty"`
	RightDataBegin *uint64 `json:"right_data_begin,omitempty"`
}

func (e *deltaJSON) begin(h DeltaHeader) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	// The header's fields, then the runs, in the same object.
	_, err = fmt.Fprintf(e.w, "%s,\"runs\":[", b[:len(b)-1])
	e.first = true
	return err
}

func (e *deltaJSON) run(r thinmeta.DeltaRun) error {
	j := DeltaJSONRun{Kind: r.Kind.String(), Begin: r.Begin, Length: r.Len}
	if r.Kind != thinmeta.DeltaRightOnly {
		j.LeftDataBegin = &r.LeftData
	}
	if r.Kind != thinmeta.DeltaLeftOnly {
		j.RightDataBegin = &r.RightData
	}
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	sep := ",\n"
	if e.first {
		sep, e.first = "\n", false
	}
	_, err = fmt.Fprintf(e.w, "%s%s", sep, b)
	return err
}

func (e *deltaJSON) end() error {
	_, err := io.WriteString(e.w, "\n]}\n")
	return err
}
