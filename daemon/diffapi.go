package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/control"
)

// diffFlushEvery is how many lines a diff stream sends between flushes:
// a client sees progress without a write per range.
const diffFlushEvery = 256

// serveDiff streams GET /v1/volumes/{name}/diff?base=BASE&offset=N as
// NDJSON: a DiffHeader line, a DiffRange line per range, a DiffEnd line;
// an error after the header ends the stream with an error line instead.
// Without base it is a diff against nothing: the allocated ranges.
func (d *Daemon) serveDiff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	base := q.Get("base")
	if q.Has("base") && base == "" {
		fail(w, fmt.Errorf("diff: empty ?base= (leave it out for the allocated ranges): %w", catalog.ErrInvalid))
		return
	}
	var offset uint64
	if s := q.Get("offset"); s != "" {
		var err error
		if offset, err = strconv.ParseUint(s, 10, 64); err != nil {
			fail(w, fmt.Errorf("offset %q: want a byte offset: %w", s, catalog.ErrInvalid))
			return
		}
	}
	h, err := d.PrepareDiff(r.Context(), base, r.PathValue("name"), offset)
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	lines := 0
	send := func(l control.DiffLine) error {
		if err := enc.Encode(l); err != nil {
			return err
		}
		if lines++; lines%diffFlushEvery == 0 && flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	if send(control.DiffLine{DiffHeader: &h}) != nil {
		return
	}
	end, err := d.Diff(r.Context(), h, func(x control.DiffRange) error { return send(control.DiffLine{DiffRange: &x}) })
	if err != nil {
		send(control.DiffLine{Error: err.Error()})
		return
	}
	send(control.DiffLine{DiffEnd: &end})
}
