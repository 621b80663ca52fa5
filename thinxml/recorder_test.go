package thinxml

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/thind-storage/thind/metastream"
)

// event is one Emitter call.
type event struct {
	kind byte // 'S' BeginSuperblock, 's' EndSuperblock, 'D' BeginDevice, 'd' EndDevice, 'M' Map
	sb   metastream.Superblock
	dev  metastream.Device
	m    metastream.Mapping
}

func (e event) String() string {
	switch e.kind {
	case 'S':
		return fmt.Sprintf("superblock %+v", e.sb)
	case 's':
		return "end superblock"
	case 'D':
		return fmt.Sprintf("device %+v", e.dev)
	case 'd':
		return "end device"
	}
	return fmt.Sprintf("map %+v", e.m)
}

// recorder is an Emitter that keeps every call.
type recorder struct{ events []event }

func (r *recorder) BeginSuperblock(sb metastream.Superblock) error {
	r.events = append(r.events, event{kind: 'S', sb: sb})
	return nil
}
func (r *recorder) EndSuperblock() error { r.events = append(r.events, event{kind: 's'}); return nil }
func (r *recorder) BeginDevice(d metastream.Device) error {
	r.events = append(r.events, event{kind: 'D', dev: d})
	return nil
}
func (r *recorder) EndDevice() error { r.events = append(r.events, event{kind: 'd'}); return nil }
func (r *recorder) Map(m metastream.Mapping) error {
	r.events = append(r.events, event{kind: 'M', m: m})
	return nil
}

// replay feeds events to em.
func replay(events []event, em metastream.Emitter) error {
	for _, e := range events {
		var err error
		switch e.kind {
		case 'S':
			err = em.BeginSuperblock(e.sb)
		case 's':
			err = em.EndSuperblock()
		case 'D':
			err = em.BeginDevice(e.dev)
		case 'd':
			err = em.EndDevice()
		case 'M':
			err = em.Map(e.m)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseEvents parses doc into events.
func parseEvents(doc []byte) ([]event, error) {
	var r recorder
	err := Parse(bytes.NewReader(doc), &r)
	return r.events, err
}

// writeEvents prints events with a Writer.
func writeEvents(events []event) ([]byte, error) {
	var out bytes.Buffer
	err := replay(events, NewWriter(&out))
	return out.Bytes(), err
}

// coalesce is the test's own statement of thin_dump's rule, kept naive on
// purpose: expand every run to single blocks, then join a block to the run
// before it when origin and data both continue it and the time is equal.
// Runs never cross a device. Only for small documents.
func coalesce(events []event) []event {
	var out []event
	var run *metastream.Mapping
	for _, e := range events {
		if e.kind != 'M' {
			run = nil
			out = append(out, e)
			continue
		}
		for k := uint64(0); k < e.m.Len; k++ {
			b := metastream.Mapping{Origin: e.m.Origin + k, Data: e.m.Data + k, Len: 1, Time: e.m.Time}
			if run != nil && b.Time == run.Time && b.Origin == run.Origin+run.Len &&
				b.Data == run.Data+run.Len && run.Origin+run.Len != 0 && run.Data+run.Len != 0 {
				run.Len++
				continue
			}
			out = append(out, event{kind: 'M', m: b})
			run = &out[len(out)-1].m
		}
	}
	return out
}

// diffEvents describes the first difference between two event lists.
func diffEvents(got, want []event) string {
	for i := 0; i < min(len(got), len(want)); i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("event %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("got %d events, want %d", len(got), len(want))
	}
	return ""
}

// firstDiffLine describes the first differing line of two texts.
func firstDiffLine(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < min(len(g), len(w)); i++ {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got  %q\n want %q", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("got %d lines, want %d", len(g), len(w))
}
