package nbd

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

const (
	benchSize  = 256 << 20
	benchBlock = 4096
)

// benchMemory is a memory backend with every page allocated, so reads do
// real copies rather than clearing holes.
func benchMemory(b *testing.B) *Memory {
	m := NewMemory(benchSize, MemoryOptions{})
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	for off := int64(0); off < benchSize; off += int64(len(buf)) {
		if err := m.WriteAt(b.Context(), buf, off, 0); err != nil {
			b.Fatal(err)
		}
	}
	return m
}

// BenchmarkBackendDirect is the baseline: 4 KiB random I/O on the memory
// backend without the protocol.
func BenchmarkBackendDirect(b *testing.B) {
	m := benchMemory(b)
	buf := make([]byte, benchBlock)
	for _, op := range []string{"read", "write"} {
		b.Run("op="+op, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			ctx := b.Context()
			b.SetBytes(benchBlock)
			b.ReportAllocs()
			for b.Loop() {
				off := rng.Int64N(benchSize/benchBlock) * benchBlock
				var err error
				if op == "read" {
					err = m.ReadAt(ctx, buf, off)
				} else {
					err = m.WriteAt(ctx, buf, off, 0)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServer measures 4 KiB random reads and writes through the
// server over a unix socket with structured replies, at a fixed queue
// depth. The client is allocation-free in steady state, so allocs/op is
// the server's allocations per request.
func BenchmarkServer(b *testing.B) {
	m := benchMemory(b)
	ts := startServer(b, Options{Logger: nopLogger()}, &Export{Name: "bench", Backend: m})
	for _, op := range []string{"read", "write"} {
		for _, qd := range []int{1, 16, 32} {
			b.Run(fmt.Sprintf("op=%s/qd=%d", op, qd), func(b *testing.B) {
				c := dialUnix(b, ts)
				c.negotiate("bench", true, false, false)
				runBenchClient(b, c, op == "write", qd)
			})
		}
	}
}

// runBenchClient keeps qd requests in flight: a sender goroutine writes a
// request whenever a slot is free, the benchmark goroutine reads replies
// and frees slots.
func runBenchClient(b *testing.B, c *rawClient, write bool, qd int) {
	slots := make(chan struct{}, qd)
	for range qd {
		slots <- struct{}{}
	}
	sendErr := make(chan error, 1)
	start := make(chan int)
	go func() {
		rng := rand.New(rand.NewPCG(3, 4))
		req := make([]byte, wire.RequestSize+benchBlock)
		binary.BigEndian.PutUint32(req, wire.MagicRequest)
		n, size := wire.RequestSize, uint32(benchBlock)
		if write {
			binary.BigEndian.PutUint16(req[6:], wire.CmdWrite)
			n += benchBlock
		} else {
			binary.BigEndian.PutUint16(req[6:], wire.CmdRead)
		}
		binary.BigEndian.PutUint32(req[24:], size)
		total := <-start
		for i := range total {
			<-slots
			binary.BigEndian.PutUint64(req[8:], uint64(i))
			binary.BigEndian.PutUint64(req[16:], rng.Uint64N(benchSize/benchBlock)*benchBlock)
			if _, err := c.nc.Write(req[:n]); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()

	hdr := make([]byte, wire.StructuredReplySize+8)
	data := make([]byte, benchBlock)
	b.SetBytes(benchBlock)
	b.ReportAllocs()
	b.ResetTimer()
	start <- b.N
	for range b.N {
		if _, err := io.ReadFull(c.br, hdr[:4]); err != nil {
			b.Fatal(err)
		}
		switch binary.BigEndian.Uint32(hdr) {
		case wire.MagicSimpleReply:
			if _, err := io.ReadFull(c.br, hdr[4:wire.SimpleReplySize]); err != nil {
				b.Fatal(err)
			}
			if e := binary.BigEndian.Uint32(hdr[4:]); e != 0 {
				b.Fatalf("errno %d", e)
			}
		case wire.MagicStructuredReply:
			if _, err := io.ReadFull(c.br, hdr[4:]); err != nil {
				b.Fatal(err)
			}
			if typ := binary.BigEndian.Uint16(hdr[6:]); typ != wire.ReplyTypeOffsetData {
				b.Fatalf("chunk type %d", typ)
			}
			if _, err := io.ReadFull(c.br, data); err != nil {
				b.Fatal(err)
			}
		default:
			b.Fatalf("reply magic %x", hdr[:4])
		}
		slots <- struct{}{}
	}
	b.StopTimer()
	if err := <-sendErr; err != nil {
		b.Fatal(err)
	}
}
