package thinxml

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/metastream"
)

// randomDocument returns the calls a metadata walker would make for a
// random pool: mappings one block at a time in ascending origin order,
// with enough continuing origins, data blocks and equal times to make runs,
// and times that change inside runs to exercise the time condition.
func randomDocument(rng *rand.Rand) []event {
	uuids := []string{"", "", "0123456789abcdef", "a&b<c>\"d'", "tab\tnl\ncr\r", "é€😀"}
	ev := []event{{kind: 'S', sb: metastream.Superblock{
		UUID:          uuids[rng.IntN(len(uuids))],
		Time:          randUint32(rng),
		Transaction:   randUint64(rng),
		Flags:         uint32(rng.IntN(2)),
		Version:       uint32(1 + rng.IntN(2)),
		DataBlockSize: 128 << rng.IntN(15),
		NrDataBlocks:  randUint64(rng),
		MetadataSnap:  uint64(rng.IntN(3)) * randUint64(rng) / 2,
	}}}
	devID := uint32(rng.IntN(3))
	for range rng.IntN(6) {
		ev = append(ev, event{kind: 'D', dev: metastream.Device{
			DevID: devID, MappedBlocks: randUint64(rng), Transaction: randUint64(rng),
			CreationTime: randUint32(rng), SnapTime: randUint32(rng),
		}})
		devID += 1 + uint32(rng.IntN(3))
		origin, data := uint64(rng.IntN(1000)), uint64(rng.IntN(1000))
		times := uint32(1 + rng.IntN(3))
		for range rng.IntN(300) {
			ev = append(ev, event{kind: 'M', m: single(origin, data, rng.Uint32N(times))})
			switch rng.IntN(6) {
			case 0: // gap in origin
				origin += 2 + uint64(rng.IntN(100))
				data++
			case 1: // data jumps
				origin++
				data = uint64(rng.IntN(1 << 20))
			default:
				origin++
				data++
			}
		}
		ev = append(ev, event{kind: 'd'})
	}
	return append(ev, event{kind: 's'})
}

func randUint32(rng *rand.Rand) uint32 {
	if rng.IntN(4) == 0 {
		return rng.Uint32()
	}
	return rng.Uint32N(100)
}

func randUint64(rng *rand.Rand) uint64 {
	if rng.IntN(4) == 0 {
		return rng.Uint64()
	}
	return rng.Uint64N(100000)
}

// TestRandomRoundTrip writes random documents, parses them back and checks
// the events against the test's own coalescing, then checks that a second
// write is identical, and that the same document printed in other legal
// ways (noisyXML) parses to the same events.
func TestRandomRoundTrip(t *testing.T) {
	seed := randtest.Seed(t)
	rng := randtest.Stream(seed, seed)
	for i := range 300 {
		in := randomDocument(rng)
		out, err := writeEvents(in)
		if err != nil {
			t.Fatalf("seed %d, document %d: %v", seed, i, err)
		}
		want := coalesce(in)
		got, err := parseEvents(out)
		if err != nil {
			t.Fatalf("seed %d, document %d: %v\n%s", seed, i, err, out)
		}
		if d := diffEvents(got, want); d != "" {
			t.Fatalf("seed %d, document %d: %s", seed, i, d)
		}
		again, err := writeEvents(got)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("seed %d, document %d: second write differs (%v)", seed, i, err)
		}
		noisy := noisyXML(rng, got)
		fromNoisy, err := parseEvents(noisy)
		if err != nil {
			t.Fatalf("seed %d, document %d: %v\n%s", seed, i, err, noisy)
		}
		if d := diffEvents(fromNoisy, got); d != "" {
			t.Fatalf("seed %d, document %d: noisy form: %s\n%s", seed, i, d, noisy)
		}
	}
}

// noisyXML prints events as XML that thin_dump would never write but
// thin_restore accepts: shuffled attributes, both quote styles, random
// white space, comments, references, start/end tag pairs for mappings,
// range_mapping of length 1, defaults left out.
func noisyXML(rng *rand.Rand, events []event) []byte {
	events = append([]event(nil), events...) // self-closed devices are marked in the copy
	var b strings.Builder
	if rng.IntN(2) == 0 {
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	}
	space := func() {
		for range rng.IntN(3) {
			b.WriteByte(" \t\r\n"[rng.IntN(4)])
		}
		if rng.IntN(10) == 0 {
			b.WriteString("<!-- noise -- > -->")
		}
	}
	type attr struct{ name, value string }
	num := func(v uint64) string {
		s := strconv.FormatUint(v, 10)
		switch rng.IntN(8) {
		case 0:
			return "00" + s
		case 1: // first digit as a character reference
			return fmt.Sprintf("&#%d;", s[0]) + s[1:]
		case 2:
			return fmt.Sprintf("&#x%X;", s[0]) + s[1:]
		}
		return s
	}
	tag := func(name string, attrs []attr, selfClose bool) {
		space()
		rng.Shuffle(len(attrs), func(i, j int) { attrs[i], attrs[j] = attrs[j], attrs[i] })
		b.WriteString("<" + name)
		for _, a := range attrs {
			q := `"'`[rng.IntN(2)]
			b.WriteByte(" \n"[rng.IntN(2)])
			b.WriteString(a.name)
			if rng.IntN(4) == 0 {
				b.WriteString(" = ")
			} else {
				b.WriteByte('=')
			}
			b.WriteByte(q)
			if q == '\'' {
				b.WriteString(strings.ReplaceAll(a.value, "'", "&apos;"))
			} else {
				b.WriteString(a.value)
			}
			b.WriteByte(q)
		}
		if rng.IntN(3) == 0 {
			b.WriteString(" \n")
		}
		if selfClose {
			b.WriteString("/>")
		} else {
			b.WriteString(">")
		}
	}
	u32 := func(v uint32) string { return num(uint64(v)) }
	for i, e := range events {
		switch e.kind {
		case 'S':
			sb := e.sb
			uuid := string(appendAttrValue(nil, sb.UUID))
			uuid = strings.ReplaceAll(uuid, "&quot;", "&#34;") // any reference will do
			attrs := []attr{{"uuid", uuid}, {"time", u32(sb.Time)}, {"transaction", num(sb.Transaction)},
				{"data_block_size", u32(sb.DataBlockSize)}, {"nr_data_blocks", num(sb.NrDataBlocks)}}
			if sb.Flags != 0 || rng.IntN(2) == 0 {
				attrs = append(attrs, attr{"flags", u32(sb.Flags)})
			}
			if sb.Version != 1 || rng.IntN(2) == 0 {
				attrs = append(attrs, attr{"version", u32(sb.Version)})
			}
			if sb.MetadataSnap != 0 || rng.IntN(2) == 0 {
				attrs = append(attrs, attr{"metadata_snap", num(sb.MetadataSnap)})
			}
			if rng.IntN(4) == 0 {
				attrs = append(attrs, attr{"unknown", "ignored"})
			}
			empty := i+2 == len(events) && rng.IntN(2) == 0
			tag("superblock", attrs, empty)
			if empty {
				return []byte(b.String())
			}
		case 's':
			space()
			b.WriteString("</superblock>")
			space()
		case 'D':
			d := e.dev
			empty := events[i+1].kind == 'd' && rng.IntN(2) == 0
			tag("device", []attr{{"dev_id", u32(d.DevID)}, {"mapped_blocks", num(d.MappedBlocks)},
				{"transaction", num(d.Transaction)}, {"creation_time", u32(d.CreationTime)},
				{"snap_time", u32(d.SnapTime)}}, empty)
			if empty {
				events[i+1].kind = 0 // already closed
			}
		case 'd':
			space()
			b.WriteString("</device>")
		case 'M':
			m := e.m
			name := "range_mapping"
			attrs := []attr{{"origin_begin", num(m.Origin)}, {"data_begin", num(m.Data)},
				{"length", num(m.Len)}, {"time", u32(m.Time)}}
			if m.Len == 1 && rng.IntN(4) != 0 {
				name = "single_mapping"
				attrs = []attr{{"origin_block", num(m.Origin)}, {"data_block", num(m.Data)}, {"time", u32(m.Time)}}
			}
			selfClose := rng.IntN(4) != 0
			tag(name, attrs, selfClose)
			if !selfClose {
				space()
				b.WriteString("</" + name + ">")
			}
		}
	}
	return []byte(b.String())
}
