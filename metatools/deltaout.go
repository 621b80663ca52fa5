package metatools

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

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
	buf []byte // one element, formatted
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
	e.buf = appendElement(e.buf[:0], "    ", e.cur.Kind.String(), xmlAttr{"begin", e.cur.Begin}, xmlAttr{"length", e.cur.Len})
	_, err := e.w.Write(e.buf)
	return err
}

// xmlAttr is an attribute of a delta's element: all are numbers.
type xmlAttr struct {
	name  string
	value uint64
}

// appendElement appends an empty XML element, indented, with its
// attributes and a newline: thin_delta's runs, without fmt's cost per
// value (a delta of a large device has a great many).
func appendElement(b []byte, indent, name string, attrs ...xmlAttr) []byte {
	b = append(b, indent...)
	b = append(b, '<')
	b = append(b, name...)
	for _, a := range attrs {
		b = append(b, ' ')
		b = append(b, a.name...)
		b = append(b, '=', '"')
		b = strconv.AppendUint(b, a.value, 10)
		b = append(b, '"')
	}
	return append(b, "/>\n"...)
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
	buf  []byte // one range, formatted
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
	const indent = "      "
	switch r.Kind {
	case thinmeta.DeltaDifferent:
		e.buf = appendElement(e.buf[:0], indent, "range", xmlAttr{"begin", r.Begin}, xmlAttr{"left_data_begin", r.LeftData}, xmlAttr{"right_data_begin", r.RightData}, xmlAttr{"length", r.Len})
	case thinmeta.DeltaRightOnly:
		e.buf = appendElement(e.buf[:0], indent, "range", xmlAttr{"begin", r.Begin}, xmlAttr{"data_begin", r.RightData}, xmlAttr{"length", r.Len})
	default:
		e.buf = appendElement(e.buf[:0], indent, "range", xmlAttr{"begin", r.Begin}, xmlAttr{"data_begin", r.LeftData}, xmlAttr{"length", r.Len})
	}
	_, err := e.w.Write(e.buf)
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
