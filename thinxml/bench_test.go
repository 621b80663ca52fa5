package thinxml

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/thind-storage/thind/metastream"
)

const benchMappings = 1_000_000

// benchDocument returns the calls for a pool of 4 devices holding
// benchMappings mapping elements in all: about a third ranges of 2-64
// blocks, the rest single blocks, with data blocks near 2^30 and times
// 0-3, so numbers have realistic widths.
func benchDocument() []event {
	rng := rand.New(rand.NewPCG(1, 1))
	ev := []event{{kind: 'S', sb: metastream.Superblock{Time: 3, Transaction: 9, Version: 2, DataBlockSize: 128, NrDataBlocks: 1 << 31}}}
	const devices = 4
	for d := range devices {
		ev = append(ev, event{kind: 'D', dev: metastream.Device{DevID: uint32(d), MappedBlocks: 1 << 20, Transaction: 5, CreationTime: 1, SnapTime: 2}})
		origin := uint64(0)
		for range benchMappings / devices {
			m := metastream.Mapping{Origin: origin, Data: 1<<30 + rng.Uint64N(1<<20), Len: 1, Time: rng.Uint32N(4)}
			if rng.IntN(3) == 0 {
				m.Len = 2 + rng.Uint64N(63)
			}
			ev = append(ev, event{kind: 'M', m: m})
			origin += m.Len + 1 + rng.Uint64N(3) // a gap keeps elements apart
		}
		ev = append(ev, event{kind: 'd'})
	}
	return append(ev, event{kind: 's'})
}

// countingEmitter is the cheapest possible consumer.
type countingEmitter struct{ maps, blocks uint64 }

func (c *countingEmitter) BeginSuperblock(metastream.Superblock) error { return nil }
func (c *countingEmitter) EndSuperblock() error                        { return nil }
func (c *countingEmitter) BeginDevice(metastream.Device) error         { return nil }
func (c *countingEmitter) EndDevice() error                            { return nil }
func (c *countingEmitter) Map(m metastream.Mapping) error              { c.maps++; c.blocks += m.Len; return nil }

// blockFeeder passes runs on to a Writer one block at a time, as a
// metadata walker does.
type blockFeeder struct{ *Writer }

func (f blockFeeder) Map(m metastream.Mapping) error {
	for k := range m.Len {
		if err := f.Writer.Map(metastream.Mapping{Origin: m.Origin + k, Data: m.Data + k, Len: 1, Time: m.Time}); err != nil {
			return err
		}
	}
	return nil
}

func BenchmarkParse(b *testing.B) {
	doc, err := writeEvents(benchDocument())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("mappings="+strconv.Itoa(benchMappings), func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			var c countingEmitter
			if err := Parse(bytes.NewReader(doc), &c); err != nil {
				b.Fatal(err)
			}
			if c.maps != benchMappings {
				b.Fatalf("%d mappings", c.maps)
			}
		}
	})
}

func BenchmarkWrite(b *testing.B) {
	events := benchDocument()
	doc, err := writeEvents(events)
	if err != nil {
		b.Fatal(err)
	}
	for _, feed := range []string{"runs", "blocks"} {
		b.Run("mappings="+strconv.Itoa(benchMappings)+"/feed="+feed, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				w := NewWriter(io.Discard)
				var em metastream.Emitter = w
				if feed == "blocks" {
					em = blockFeeder{w}
				}
				if err := replay(events, em); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
