package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/nbd/internal/wire"
)

// hookBackend wraps a backend and calls hook before each operation; a
// non-nil error from the hook is returned instead of running it. Tests use
// it to gate operations and inject errors.
type hookBackend struct {
	Backend
	caps func(Capabilities) Capabilities
	hook func(ctx context.Context, op string, off, n int64) error
}

func (h *hookBackend) Capabilities() Capabilities {
	c := h.Backend.Capabilities()
	if h.caps != nil {
		c = h.caps(c)
	}
	return c
}

func (h *hookBackend) run(ctx context.Context, op string, off, n int64) error {
	if h.hook == nil {
		return nil
	}
	return h.hook(ctx, op, off, n)
}

func (h *hookBackend) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := h.run(ctx, "read", off, int64(len(p))); err != nil {
		return err
	}
	return h.Backend.ReadAt(ctx, p, off)
}

func (h *hookBackend) WriteAt(ctx context.Context, p []byte, off int64, f Flags) error {
	if err := h.run(ctx, fmt.Sprintf("write%d", f), off, int64(len(p))); err != nil {
		return err
	}
	return h.Backend.WriteAt(ctx, p, off, f)
}

func (h *hookBackend) Flush(ctx context.Context) error {
	if err := h.run(ctx, "flush", 0, 0); err != nil {
		return err
	}
	return h.Backend.Flush(ctx)
}

func (h *hookBackend) Trim(ctx context.Context, off, n int64, f Flags) error {
	if err := h.run(ctx, "trim", off, n); err != nil {
		return err
	}
	return h.Backend.Trim(ctx, off, n, f)
}

func (h *hookBackend) Zero(ctx context.Context, off, n int64, f Flags) error {
	if err := h.run(ctx, fmt.Sprintf("zero%d", f), off, n); err != nil {
		return err
	}
	return h.Backend.Zero(ctx, off, n, f)
}

func TestMalformedRequestsGetErrorsAndTheConnectionSurvives(t *testing.T) {
	const size = 1 << 20
	e, _ := memExport("vol0", size)
	ts := startServer(t, Options{}, e)
	for _, structured := range []bool{false, true} {
		t.Run(fmt.Sprintf("structured=%v", structured), func(t *testing.T) {
			c := dialUnix(t, ts)
			c.negotiate("vol0", structured, false, false)
			for _, tc := range []struct {
				name    string
				req     wire.Request
				payload []byte
				want    uint32
			}{
				{"unknown command", wire.Request{Type: 42, Length: 4096}, nil, wire.EINVAL},
				{"resize is not offered", wire.Request{Type: wire.CmdResize, Offset: size * 2}, nil, wire.EINVAL},
				{"unknown flag", wire.Request{Type: wire.CmdRead, Flags: 1 << 9, Length: 512}, nil, wire.EINVAL},
				{"unknown flag on a write drains its payload", wire.Request{Type: wire.CmdWrite, Flags: 1 << 9, Length: 512}, make([]byte, 512), wire.EINVAL},
				{"NO_HOLE on a write", wire.Request{Type: wire.CmdWrite, Flags: wire.CmdFlagNoHole, Length: 4}, []byte("abcd"), wire.EINVAL},
				{"REQ_ONE on a read", wire.Request{Type: wire.CmdRead, Flags: wire.CmdFlagReqOne, Length: 512}, nil, wire.EINVAL},
				{"FAST_ZERO on a trim", wire.Request{Type: wire.CmdTrim, Flags: wire.CmdFlagFastZero, Length: 512}, nil, wire.EINVAL},
				{"PAYLOAD_LEN without extended headers", wire.Request{Type: wire.CmdRead, Flags: wire.CmdFlagPayloadLen, Length: 512}, nil, wire.EINVAL},
				{"read past the end", wire.Request{Type: wire.CmdRead, Offset: size - 100, Length: 4096}, nil, wire.EINVAL},
				{"read at an offset near 2^64", wire.Request{Type: wire.CmdRead, Offset: ^uint64(0) - 10, Length: 4096}, nil, wire.EINVAL},
				{"write past the end drains and answers ENOSPC", wire.Request{Type: wire.CmdWrite, Offset: size, Length: 4096}, make([]byte, 4096), wire.ENOSPC},
				{"write zeroes past the end", wire.Request{Type: wire.CmdWriteZeroes, Offset: size - 1, Length: 2}, nil, wire.ENOSPC},
				{"trim past the end", wire.Request{Type: wire.CmdTrim, Offset: size + 1, Length: 0}, nil, wire.EINVAL},
				{"cache past the end", wire.Request{Type: wire.CmdCache, Offset: 0, Length: size + 1}, nil, wire.EINVAL},
				{"read above the maximum payload", wire.Request{Type: wire.CmdRead, Length: 40 << 20}, nil, wire.EINVAL},
				{"write above the maximum payload is drained", wire.Request{Type: wire.CmdWrite, Length: 33 << 20}, make([]byte, 33<<20), wire.EINVAL},
				{"block status without structured replies or a context", wire.Request{Type: wire.CmdBlockStatus, Length: 4096}, nil, wire.EINVAL},
				{"zero-length read", wire.Request{Type: wire.CmdRead, Offset: 7}, nil, 0},
				{"zero-length write", wire.Request{Type: wire.CmdWrite, Offset: 7}, nil, 0},
				{"zero-length trim", wire.Request{Type: wire.CmdTrim}, nil, 0},
				{"zero-length write zeroes", wire.Request{Type: wire.CmdWriteZeroes, Offset: size}, nil, 0},
				{"zero-length cache", wire.Request{Type: wire.CmdCache}, nil, 0},
				{"flush ignores offset and length", wire.Request{Type: wire.CmdFlush, Offset: 1 << 60, Length: 99}, nil, 0},
				{"FUA on a read is accepted", wire.Request{Type: wire.CmdRead, Flags: wire.CmdFlagFUA, Length: 512}, nil, 0},
				{"the largest cookie is echoed", wire.Request{Type: wire.CmdFlush, Cookie: ^uint64(0)}, nil, 0},
			} {
				rep := c.expectErrno(tc.req, tc.payload, tc.want)
				if tc.req.Type == wire.CmdRead && tc.want != 0 && structured && rep.simple {
					t.Errorf("%s: simple error reply to READ with structured replies", tc.name)
				}
				if structured && tc.want != 0 && rep.msg == "" && !rep.simple {
					t.Errorf("%s: error chunk without a message", tc.name)
				}
			}
			c.pwrite([]byte("after the errors"), 100)
			if got := c.pread(100, 16); string(got) != "after the errors" {
				t.Fatalf("read %q", got)
			}
			if structured {
				c.expectErrno(wire.Request{Type: wire.CmdRead, Flags: wire.CmdFlagDF, Length: 512}, nil, 0)
			} else {
				c.expectErrno(wire.Request{Type: wire.CmdRead, Flags: wire.CmdFlagDF, Length: 512}, nil, wire.EINVAL)
			}
		})
	}
	st := ts.Stats().Exports["vol0"]
	if st.Errors["EINVAL"] == 0 || st.Errors["ENOSPC"] != 4 || st.Ops["write"].Errors == 0 {
		t.Errorf("stats do not show the errors: %+v", st)
	}
}

func TestProtocolViolationsDisconnect(t *testing.T) {
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{}, e)
	for _, tc := range []struct {
		name string
		send func(c *rawClient)
	}{
		{"bad request magic", func(c *rawClient) {
			c.write(bytes.Repeat([]byte{0x12}, wire.RequestSize))
		}},
		{"the reserved old request magic", func(c *rawClient) {
			b := wire.AppendRequest(nil, wire.Request{Type: wire.CmdRead, Length: 512}, false)
			binary.BigEndian.PutUint32(b, 0x12560953)
			c.write(b)
		}},
		{"an extended header without negotiation", func(c *rawClient) {
			c.write(wire.AppendRequest(nil, wire.Request{Type: wire.CmdRead, Length: 512}, true))
		}},
		{"an option after GO", func(c *rawClient) {
			// IHAVEOPT where a request magic belongs; 12 bytes of option
			// data complete the 28 bytes the server reads.
			c.sendOption(wire.OptList, make([]byte, 12))
		}},
		{"a write above the drain limit", func(c *rawClient) {
			c.write(wire.AppendRequest(nil, wire.Request{Type: wire.CmdWrite, Length: 100 << 20}, false))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialUnix(t, ts)
			c.negotiate("vol0", false, false, false)
			c.pwrite([]byte("x"), 0)
			tc.send(c)
			c.expectClosed()
		})
	}
	// The server keeps serving other clients.
	c := dialUnix(t, ts)
	c.negotiate("vol0", true, false, true)
	c.pread(0, 4096)
}

func TestReadOnlyExportRefusesWrites(t *testing.T) {
	e, mem := memExport("ro", 1<<20)
	e.ReadOnly = true
	mem.WriteAt(t.Context(), []byte("content"), 0, 0)
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.negotiate("ro", true, false, false)
	if c.flags&wire.TransReadOnly == 0 || c.flags&(wire.TransSendTrim|wire.TransSendWriteZeroes|wire.TransSendFUA) != 0 {
		t.Fatalf("flags %#x for a read-only export", c.flags)
	}
	c.expectErrno(wire.Request{Type: wire.CmdWrite, Length: 4}, []byte("evil"), wire.EPERM)
	c.expectErrno(wire.Request{Type: wire.CmdTrim, Length: 4096}, nil, wire.EPERM)
	c.expectErrno(wire.Request{Type: wire.CmdWriteZeroes, Length: 4096}, nil, wire.EPERM)
	if got := c.pread(0, 7); string(got) != "content" {
		t.Fatalf("read %q", got)
	}
}

func TestStructuredReadsSendHolesAndHonourDF(t *testing.T) {
	const size = 4 << 20
	e, mem := memExport("vol0", size)
	ts := startServer(t, Options{}, e)
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096/16)
	for _, off := range []int64{8192, 8192 + 4096, 65536, 1<<20 - 4096} {
		mem.WriteAt(t.Context(), data, off, 0)
	}
	want := make([]byte, 1<<20)
	mem.ReadAt(t.Context(), want, 0)

	for _, extended := range []bool{false, true} {
		t.Run(fmt.Sprintf("extended=%v", extended), func(t *testing.T) {
			c := dialUnix(t, ts)
			c.negotiate("vol0", !extended, extended, false)
			r := c.expectErrno(wire.Request{Type: wire.CmdRead, Length: 1 << 20}, nil, 0)
			if !bytes.Equal(r.data, want) {
				t.Fatal("sparse read returned wrong data")
			}
			// data [8K,16K) [64K,68K) [1M-4K,1M): holes around them.
			if r.dataN != 3 || r.holes != 3 {
				t.Errorf("%d data and %d hole chunks (%v), want 3 and 3", r.dataN, r.holes, r.types)
			}
			r = c.expectErrno(wire.Request{Type: wire.CmdRead, Flags: wire.CmdFlagDF, Length: 1 << 20}, nil, 0)
			if !bytes.Equal(r.data, want) || r.dataN != 1 || r.holes != 0 {
				t.Errorf("DF read: %d data and %d hole chunks", r.dataN, r.holes)
			}
			r = c.expectErrno(wire.Request{Type: wire.CmdRead, Offset: 2 << 20, Length: 1 << 20}, nil, 0)
			if r.dataN != 0 || r.holes != 1 || !bytes.Equal(r.data, make([]byte, 1<<20)) {
				t.Errorf("read of a hole: %d data and %d hole chunks", r.dataN, r.holes)
			}
		})
	}
}

func TestBlockStatusFollowsTheBackend(t *testing.T) {
	const size = 8 << 20
	e, mem := memExport("vol0", size)
	ts := startServer(t, Options{MaxExtents: 3}, e)
	mem.WriteAt(t.Context(), []byte{1}, 4096, 0)
	mem.Zero(t.Context(), 1<<20, 1<<20, FlagNoHole)
	mem.WriteAt(t.Context(), []byte{1}, 3<<20, 0)

	for _, extended := range []bool{false, true} {
		t.Run(fmt.Sprintf("extended=%v", extended), func(t *testing.T) {
			c := dialUnix(t, ts)
			c.negotiate("vol0", !extended, extended, true)
			r := c.expectErrno(wire.Request{Type: wire.CmdBlockStatus, Length: size}, nil, 0)
			hz := ExtentHole | ExtentZero
			want := []Extent{{4096, hz}, {4096, 0}, {1<<20 - 8192, hz}}
			if fmt.Sprint(r.extents) != fmt.Sprint(want) {
				t.Errorf("extents %v, want %v (capped at 3)", r.extents, want)
			}
			r = c.expectErrno(wire.Request{Type: wire.CmdBlockStatus, Offset: 1 << 20, Length: 3 << 20}, nil, 0)
			want = []Extent{{1 << 20, ExtentZero}, {1 << 20, hz}, {4096, 0}}
			if fmt.Sprint(r.extents) != fmt.Sprint(want) {
				t.Errorf("extents %v, want %v", r.extents, want)
			}
			r = c.expectErrno(wire.Request{Type: wire.CmdBlockStatus, Flags: wire.CmdFlagReqOne, Offset: 1<<20 + 512, Length: 1000}, nil, 0)
			if fmt.Sprint(r.extents) != fmt.Sprint([]Extent{{1000, ExtentZero}}) {
				t.Errorf("REQ_ONE extents %v", r.extents)
			}
			c.expectErrno(wire.Request{Type: wire.CmdBlockStatus, Offset: 100}, nil, wire.EINVAL)
			c.expectErrno(wire.Request{Type: wire.CmdBlockStatus, Offset: size - 512, Length: 1024}, nil, wire.EINVAL)
		})
	}
}

func TestExtendedHeaders(t *testing.T) {
	const size = 1 << 20
	e, mem := memExport("vol0", size)
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.negotiate("vol0", false, true, true)

	// Every reply is an extended chunk, success without data a NONE.
	r := c.expectErrno(wire.Request{Type: wire.CmdWrite, Flags: wire.CmdFlagPayloadLen, Offset: 512, Length: 5}, []byte("hello"), 0)
	if fmt.Sprint(r.types) != fmt.Sprint([]uint16{wire.ReplyTypeNone}) {
		t.Errorf("write reply chunks %v", r.types)
	}
	// qemu tolerates WRITE without PAYLOAD_LEN; so do we.
	c.expectErrno(wire.Request{Type: wire.CmdWrite, Offset: 517, Length: 6}, []byte(" world"), 0)
	if got := c.pread(512, 11); string(got) != "hello world" {
		t.Fatalf("read %q", got)
	}
	c.expectErrno(wire.Request{Type: wire.CmdFlush}, nil, 0)
	// A payload on a command that takes none is read, then refused.
	c.expectErrno(wire.Request{Type: wire.CmdTrim, Flags: wire.CmdFlagPayloadLen, Length: 8}, []byte("12345678"), wire.EINVAL)
	// 64-bit effect lengths are range checked without overflow.
	c.expectErrno(wire.Request{Type: wire.CmdTrim, Offset: 4096, Length: 1 << 40}, nil, wire.EINVAL)
	c.expectErrno(wire.Request{Type: wire.CmdWriteZeroes, Offset: 1, Length: ^uint64(0)}, nil, wire.ENOSPC)
	c.expectErrno(wire.Request{Type: wire.CmdWriteZeroes, Offset: 4096, Length: size - 4096}, nil, 0)
	r = c.expectErrno(wire.Request{Type: wire.CmdBlockStatus, Length: size}, nil, 0)
	if fmt.Sprint(r.extents) != fmt.Sprint([]Extent{{4096, 0}, {size - 4096, ExtentHole | ExtentZero}}) {
		t.Errorf("extents %v", r.extents)
	}
	if fmt.Sprint(r.types) != fmt.Sprint([]uint16{wire.ReplyTypeBlockStatusExt}) {
		t.Errorf("block status chunks %v", r.types)
	}
	c.expectErrno(wire.Request{Type: wire.CmdRead, Length: 1 << 33}, nil, wire.EINVAL)
	if mem.Allocated() != 4096 {
		t.Errorf("allocated %d after zeroing, want 4096", mem.Allocated())
	}
	// A compact header is now a bad magic (padded to the 32 bytes the
	// server reads).
	c.write(append(wire.AppendRequest(nil, wire.Request{Type: wire.CmdFlush}, false), 0, 0, 0, 0))
	c.expectClosed()
}

func TestBackendErrorsMapToNBDErrors(t *testing.T) {
	var (
		mu     sync.Mutex
		inject error
	)
	e, _ := memExport("vol0", 1<<20)
	e.Backend = &hookBackend{Backend: e.Backend, hook: func(context.Context, string, int64, int64) error {
		mu.Lock()
		defer mu.Unlock()
		return inject
	}}
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.negotiate("vol0", true, false, false)
	for _, tc := range []struct {
		err  error
		req  wire.Request
		want uint32
	}{
		{ErrNoSpace, wire.Request{Type: wire.CmdWrite, Length: 1}, wire.ENOSPC},
		{fmt.Errorf("quota: %w", syscall.EDQUOT), wire.Request{Type: wire.CmdWrite, Length: 1}, wire.ENOSPC},
		{ErrReadOnly, wire.Request{Type: wire.CmdTrim, Length: 1}, wire.EPERM},
		{syscall.EIO, wire.Request{Type: wire.CmdRead, Length: 1}, wire.EIO},
		{fmt.Errorf("some library error"), wire.Request{Type: wire.CmdFlush}, wire.EIO},
		{ErrNotSupported, wire.Request{Type: wire.CmdWriteZeroes, Length: 1}, wire.EINVAL},
		{ErrNotSupported, wire.Request{Type: wire.CmdWriteZeroes, Flags: wire.CmdFlagFastZero, Length: 1}, wire.ENOTSUP},
		{syscall.ENOMEM, wire.Request{Type: wire.CmdRead, Length: 1}, wire.ENOMEM},
		{syscall.EOVERFLOW, wire.Request{Type: wire.CmdRead, Length: 1}, wire.EOVERFLOW},
		{syscall.EBADF, wire.Request{Type: wire.CmdRead, Length: 1}, wire.EIO},
		{ErrShutdown, wire.Request{Type: wire.CmdRead, Length: 1}, wire.ESHUTDOWN},
		{context.Canceled, wire.Request{Type: wire.CmdRead, Length: 1}, wire.ESHUTDOWN},
	} {
		mu.Lock()
		inject = tc.err
		mu.Unlock()
		var payload []byte
		if tc.req.Type == wire.CmdWrite {
			payload = make([]byte, tc.req.Length)
		}
		if r := c.expectErrno(tc.req, payload, tc.want); r.msg == "" {
			t.Errorf("%v: no message in the error chunk", tc.err)
		}
	}
	mu.Lock()
	inject = nil
	mu.Unlock()
	c.pread(0, 1)
}

func TestFUAIsEmulatedWithFlush(t *testing.T) {
	var mu sync.Mutex
	var ops []string
	e, _ := memExport("vol0", 1<<20)
	e.Backend = &hookBackend{
		Backend: e.Backend,
		caps:    func(c Capabilities) Capabilities { c.FUA = false; return c },
		hook: func(_ context.Context, op string, _, _ int64) error {
			mu.Lock()
			ops = append(ops, op)
			mu.Unlock()
			return nil
		},
	}
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.negotiate("vol0", false, false, false)
	if c.flags&wire.TransSendFUA == 0 {
		t.Fatal("SEND_FUA not advertised for a backend that can flush")
	}
	c.expectErrno(wire.Request{Type: wire.CmdWrite, Flags: wire.CmdFlagFUA, Length: 3}, []byte("fua"), 0)
	c.expectErrno(wire.Request{Type: wire.CmdWriteZeroes, Flags: wire.CmdFlagFUA | wire.CmdFlagNoHole, Length: 512}, nil, 0)
	mu.Lock()
	defer mu.Unlock()
	if want := fmt.Sprint([]string{"write0", "flush", fmt.Sprintf("zero%d", FlagNoHole), "flush"}); fmt.Sprint(ops) != want {
		t.Errorf("backend saw %v, want %v", ops, want)
	}
}

// TestRepliesInCompletionOrder holds a READ in the backend while a later
// request completes: the later reply must arrive first, and the held one
// afterwards, whole.
func TestRepliesInCompletionOrder(t *testing.T) {
	release := make(chan struct{})
	held := make(chan struct{})
	e, mem := memExport("vol0", 1<<20)
	mem.WriteAt(t.Context(), bytes.Repeat([]byte{7}, 4096), 0, 0)
	e.Backend = &hookBackend{Backend: e.Backend, hook: func(_ context.Context, op string, off, _ int64) error {
		if op == "read" && off == 0 {
			close(held)
			<-release
		}
		return nil
	}}
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.negotiate("vol0", true, false, false)
	slow := c.send(wire.Request{Type: wire.CmdRead, Length: 4096}, nil)
	<-held
	fast := c.send(wire.Request{Type: wire.CmdRead, Offset: 8192, Length: 4096}, nil)
	if r := c.recv(); r.cookie != fast || r.errno != 0 {
		t.Fatalf("first reply %v, want the fast read %#x", r, fast)
	}
	close(release)
	if r := c.recv(); r.cookie != slow || !bytes.Equal(r.data, bytes.Repeat([]byte{7}, 4096)) {
		t.Fatalf("second reply %v, want the slow read %#x with its data", r, slow)
	}
}

// TestInFlightCapBoundsBackendConcurrency checks the backpressure: with the
// backend blocked, the server runs at most MaxInFlight requests and still
// answers all of them once it is released.
func TestInFlightCapBoundsBackendConcurrency(t *testing.T) {
	const cap = 4
	var cur, peak atomic.Int32
	arrived := make(chan struct{}, 100)
	release := make(chan struct{})
	e, _ := memExport("vol0", 1<<20)
	e.Backend = &hookBackend{Backend: e.Backend, hook: func(context.Context, string, int64, int64) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		arrived <- struct{}{}
		<-release
		cur.Add(-1)
		return nil
	}}
	ts := startServer(t, Options{MaxInFlight: cap, Workers: 16}, e)
	c := dialUnix(t, ts)
	c.negotiate("vol0", true, false, false)
	const n = 20
	for i := range n {
		c.send(wire.Request{Type: wire.CmdWrite, Offset: uint64(i) * 4096, Length: 4096}, make([]byte, 4096))
	}
	for range cap {
		<-arrived
	}
	close(release)
	for range n {
		if r := c.recv(); r.errno != 0 {
			t.Fatalf("reply %v", r)
		}
	}
	if p := peak.Load(); p > cap {
		t.Fatalf("backend ran %d requests at once, cap %d", p, cap)
	}
}

// TestConcurrentClients runs pipelined random writes and reads from many
// connections to one export (multi-conn), each on its own region, and
// checks every read against a per-client model.
func TestConcurrentClients(t *testing.T) {
	const clients, region, ops = 8, 1 << 20, 300
	e, _ := memExport("vol0", clients*region)
	ts := startServer(t, Options{}, e)
	t.Run("clients", func(t *testing.T) {
		for i := range clients {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				seed := uint64(i)
				rng := randtest.Stream(seed, 42)
				c := dialUnix(t, ts)
				c.negotiate("vol0", i%2 == 0, i%3 == 0, false)
				model := make([]byte, region)
				base := uint64(i * region)
				for range ops {
					off := rng.Uint64N(region - 8192)
					n := 1 + rng.Uint64N(8192)
					switch rng.IntN(4) {
					case 0, 1:
						p := make([]byte, n)
						for j := range p {
							p[j] = byte(rng.Uint32())
						}
						copy(model[off:], p)
						c.pwrite(p, base+off)
					case 2:
						c.expectErrno(wire.Request{Type: wire.CmdWriteZeroes, Offset: base + off, Length: n}, nil, 0)
						clear(model[off : off+n])
					default:
						if got := c.pread(base+off, n); !bytes.Equal(got, model[off:off+n]) {
							t.Fatalf("client %d (seed %d): read %d+%d differs from the model", i, seed, off, n)
						}
					}
				}
				// Pipelined: many requests, then all replies.
				for j := range 32 {
					c.send(wire.Request{Type: wire.CmdRead, Offset: base + uint64(j)*4096, Length: 4096}, nil)
				}
				for range 32 {
					if r := c.recv(); r.errno != 0 {
						t.Fatalf("pipelined read %v", r)
					}
				}
				c.disc()
				c.expectClosed()
			})
		}
	})
	if st := ts.Stats(); st.ConnectionsTotal != clients || st.Exports["vol0"].Ops["read"].Requests == 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestGracefulShutdownFinishesInFlightRequests starts a shutdown while a
// write is held in the backend: the write completes and is answered, the
// connection then closes and Serve returns.
func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	release := make(chan struct{})
	held := make(chan struct{})
	e, mem := memExport("vol0", 1<<20)
	e.Backend = &hookBackend{Backend: e.Backend, hook: func(_ context.Context, op string, _, _ int64) error {
		if op == "write0" {
			close(held)
			<-release
		}
		return nil
	}}
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.negotiate("vol0", true, false, false)
	cookie := c.send(wire.Request{Type: wire.CmdWrite, Length: 4}, []byte("last"))
	<-held
	ts.cancel()
	close(release)
	if r := c.recv(); r.cookie != cookie || r.errno != 0 {
		t.Fatalf("in-flight write answered %v", r)
	}
	c.expectClosed()
	ts.stop(t)
	buf := make([]byte, 4)
	mem.ReadAt(t.Context(), buf, 0)
	if string(buf) != "last" {
		t.Fatalf("the in-flight write was lost: %q", buf)
	}
}

// TestShutdownTimeoutCancelsStuckBackends: a backend call that never
// returns on its own is cancelled through its context after the timeout.
func TestShutdownTimeoutCancelsStuckBackends(t *testing.T) {
	held := make(chan struct{})
	e, _ := memExport("vol0", 1<<20)
	e.Backend = &hookBackend{Backend: e.Backend, hook: func(ctx context.Context, op string, _, _ int64) error {
		if op == "flush" {
			close(held)
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}}
	ts := startServer(t, Options{ShutdownTimeout: 1}, e)
	c := dialUnix(t, ts)
	c.negotiate("vol0", true, false, false)
	c.send(wire.Request{Type: wire.CmdFlush}, nil)
	<-held
	ts.stop(t)
}

// TestBrokenConnectionCancelsBackendCalls: a client that resets its TCP
// connection while a request is in the backend gets that call cancelled.
func TestBrokenConnectionCancelsBackendCalls(t *testing.T) {
	held := make(chan struct{})
	cancelled := make(chan struct{})
	e, _ := memExport("vol0", 1<<20)
	e.Backend = &hookBackend{Backend: e.Backend, hook: func(ctx context.Context, op string, _, _ int64) error {
		if op == "flush" {
			close(held)
			<-ctx.Done()
			close(cancelled)
			return ctx.Err()
		}
		return nil
	}}
	ts := startServer(t, Options{}, e)
	nc, err := net.Dial("tcp", ts.tcp)
	if err != nil {
		t.Fatal(err)
	}
	c := newRawClient(t, nc)
	c.negotiate("vol0", true, false, false)
	c.send(wire.Request{Type: wire.CmdFlush}, nil)
	<-held
	nc.(*net.TCPConn).SetLinger(0) // close with RST
	nc.Close()
	<-cancelled
}

func TestMinimumBlockSizeIsEnforced(t *testing.T) {
	e, _ := memExport("aligned", 1<<20)
	e.Backend = &hookBackend{Backend: e.Backend, caps: func(c Capabilities) Capabilities {
		c.MinBlockSize = 512
		return c
	}}
	ts := startServer(t, Options{}, e)
	c := dialUnix(t, ts)
	c.negotiate("aligned", true, false, false)
	c.expectErrno(wire.Request{Type: wire.CmdRead, Offset: 100, Length: 512}, nil, wire.EINVAL)
	c.expectErrno(wire.Request{Type: wire.CmdWrite, Length: 100}, make([]byte, 100), wire.EINVAL)
	c.expectErrno(wire.Request{Type: wire.CmdRead, Offset: 512, Length: 1024}, nil, 0)
}
