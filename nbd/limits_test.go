package nbd

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/tooltest"
	"github.com/thind-storage/thind/nbd/internal/wire"
)

// waitStats polls the server's Stats until cond holds, failing after 30 s.
func waitStats(t *testing.T, s *Server, what string, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := s.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30s: %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConnectionsBeyondTheLimitAreClosedAtOnce(t *testing.T) {
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{MaxConnections: 2}, e)
	a, b := dialUnix(t, ts), dialUnix(t, ts)
	a.negotiate("vol0", true, false, false)
	b.negotiate("vol0", true, false, false)

	c := dialUnix(t, ts)
	c.expectClosed() // no greeting: the connection was never served
	if n := ts.Stats().LimitHits[LimitConnections]; n != 1 {
		t.Fatalf("connection limit hits %d, want 1", n)
	}
	// The established clients keep working; a slot that frees is reused.
	a.pwrite([]byte("still here"), 0)
	b.disc()
	b.expectClosed()
	waitStats(t, ts.Server, "b's slot freed", func(s Stats) bool { return s.ConnectionsOpen == 1 })
	d := dialUnix(t, ts)
	d.negotiate("vol0", true, false, false)
	if got := string(d.pread(0, 10)); got != "still here" {
		t.Fatalf("read %q", got)
	}
}

// TestStalledHandshakesAreEvictedForOtherPeers: unix clients that read
// the greeting and stop fill the handshake slots; a TCP client (another
// peer) still gets in at once, displacing the oldest of them; another
// unix client is closed at once while the slots hold handshakes of its
// own peer younger than a second.
func TestStalledHandshakesAreEvictedForOtherPeers(t *testing.T) {
	const slots = 4
	e, _ := memExport("vol0", 1<<20)
	ts := startServer(t, Options{MaxHandshakes: slots}, e)
	stalled := make([]*rawClient, slots)
	for i := range stalled {
		stalled[i] = dialUnix(t, ts)
		stalled[i].read(wire.GreetingSize) // admitted: the server greeted it
	}
	nc, err := net.Dial("tcp", ts.tcp)
	if err != nil {
		t.Fatal(err)
	}
	c := newRawClient(t, nc)
	c.negotiate("vol0", true, false, false)
	c.pwrite([]byte("in"), 0)
	stalled[0].expectClosed() // the oldest of the busiest peer

	// c's handshake is over, so its slot is free: fill it again, and
	// the next unix client finds only young handshakes of its own peer.
	refill := dialUnix(t, ts)
	refill.read(wire.GreetingSize)
	late := dialUnix(t, ts)
	late.expectClosed()
	st := ts.Stats()
	if st.LimitHits[LimitHandshakes] != 2 || st.HandshakeFailures[FailureEvicted] != 1 {
		t.Fatalf("handshake limit hits %d (want 2: the eviction and the refusal), evicted %d (want 1)",
			st.LimitHits[LimitHandshakes], st.HandshakeFailures[FailureEvicted])
	}
	// The younger stalled clients are still being negotiated with.
	for _, s := range stalled[1:] {
		s.write([]byte{0, 0, 0, 3})
		s.expectOption(wire.OptStructuredReply, nil, wire.RepAck)
	}
}

// stallReads sends n READs of size bytes and reads nothing back.
func stallReads(c *rawClient, n int, size uint64) {
	for i := range n {
		c.send(wire.Request{Type: wire.CmdRead, Offset: uint64(i) * size % (32 << 20), Length: size}, nil)
	}
}

// TestStalledReadersLeaveEveryConnectionItsShare: clients that never read
// their 16 MiB READs fill the shared buffer bytes; a client doing 64 KiB
// I/O goes on within its reservation, the server's holdings stay within
// the budget, and the reply timeout drops the stalled clients.
func TestStalledReadersLeaveEveryConnectionItsShare(t *testing.T) {
	const budget = 64 << 20
	e, mem := memExport("vol0", 64<<20)
	ts := startServer(t, Options{BufferBudget: budget, MaxConnections: 8, ReplyTimeout: time.Second}, e)
	for range 4 {
		c := dialUnix(t, ts)
		c.negotiate("vol0", false, false, false)
		stallReads(c, 8, 16<<20)
	}
	st := waitStats(t, ts.Server, "the stalled clients holding the shared bytes", func(s Stats) bool {
		return s.LimitHits[LimitBuffers] > 0
	})
	if st.BufferedBytes > budget {
		t.Fatalf("%d bytes buffered, budget %d", st.BufferedBytes, budget)
	}
	// A real client's block status queries get (shortened) answers
	// that still map the whole export.
	mem.WriteAt(t.Context(), []byte("data"), 40<<20, 0)
	if out := tooltest.Run(t, "nbdinfo", pkgLibnbd, "--map", ts.unixURI("vol0")); !strings.Contains(out, fmt.Sprint(64<<20-(40<<20+4096))) {
		t.Errorf("nbdinfo --map while the budget is spent:\n%s", out)
	} else {
		t.Logf("nbdinfo --map while the budget is spent:\n%s", out)
	}
	c := dialUnix(t, ts)
	c.negotiate("vol0", true, false, false)
	p := make([]byte, 64<<10)
	for i := range 50 {
		p[0] = byte(i)
		c.pwrite(p, 0)
		if got := c.pread(0, uint64(len(p))); got[0] != byte(i) {
			t.Fatalf("round trip %d read %d", i, got[0])
		}
	}
	waitStats(t, ts.Server, "the stalled clients dropped", func(s Stats) bool {
		return s.LimitHits[LimitReply] > 0
	})
	t.Logf("buffered %d of %d bytes while stalled; the other client made 50 round trips", st.BufferedBytes, budget)
}

// TestShutdownDropsAStalledReaderInSeconds: with a 30 s shutdown
// timeout, a client that stopped reading does not hold a shutdown.
func TestShutdownDropsAStalledReaderInSeconds(t *testing.T) {
	e, _ := memExport("vol0", 64<<20)
	ts := startServer(t, Options{ShutdownTimeout: 30 * time.Second}, e)
	c := dialUnix(t, ts)
	c.negotiate("vol0", false, false, false)
	stallReads(c, 4, 16<<20)
	waitStats(t, ts.Server, "the stalled reader holding buffers", func(s Stats) bool { return s.BufferedBytes >= 16<<20 })
	start := time.Now()
	ts.stop(t)
	if took := time.Since(start); took > 2*shutdownReplyTimeout+time.Second {
		t.Fatalf("shutdown took %v with a stalled reader", took)
	}
	if n := ts.Stats().BufferedBytes; n != 0 {
		t.Fatalf("%d bytes still buffered after the shutdown", n)
	}
}

// busyLookup refuses every export with ErrExportBusy, as the daemon does
// at a volume's connection limit.
type busyLookup struct{ *MapExports }

func (busyLookup) LookupExport(context.Context, string) (*Export, error) {
	return nil, fmt.Errorf("vol0 has 2 connections: %w", ErrExportBusy)
}

func TestExportBusyIsAPolicyRefusal(t *testing.T) {
	srv, err := NewServer(busyLookup{NewMapExports()}, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the clients close, then the connections
	// are waited for.
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	serve := func() *rawClient {
		a, b := net.Pipe()
		wg.Go(func() { srv.ServeConn(context.Background(), a) })
		return newRawClient(t, b)
	}
	c := serve()
	c.greet(wire.ClientFlagFixedNewstyle)
	rs := c.expectOption(wire.OptGo, wire.InfoRequest{Name: "vol0"}.Append(nil), wire.RepErrPolicy)
	t.Logf("GO refused: %s", rs[len(rs)-1].data)
	c = serve()
	c.greet(wire.ClientFlagFixedNewstyle)
	c.sendOption(wire.OptExportName, []byte("vol0"))
	c.expectClosed()
	st := srv.Stats()
	if st.LimitHits[LimitExport] != 2 || st.HandshakeFailures[FailureExportBusy] != 1 {
		t.Fatalf("export limit hits %d (want 2), export_busy failures %d (want 1)", st.LimitHits[LimitExport], st.HandshakeFailures[FailureExportBusy])
	}
}

func TestBufferBudgetBelowTwoPayloadsIsRefused(t *testing.T) {
	_, err := NewServer(NewMapExports(), Options{BufferBudget: MaxPayload})
	if err == nil || !strings.Contains(err.Error(), "twice the maximum payload") {
		t.Fatalf("a 32 MiB buffer budget: %v", err)
	}
}

// TestShutdownAnswersARequestWaitingForBudget: a READ whose reader waits
// for shared budget bytes when the shutdown begins is answered ESHUTDOWN;
// the READ that holds the bytes finishes with its data.
func TestShutdownAnswersARequestWaitingForBudget(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	e, _ := memExport("vol0", 64<<20)
	e.Backend = &hookBackend{Backend: e.Backend, hook: func(ctx context.Context, op string, _, n int64) error {
		if op == "read" && n == MaxPayload {
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}}
	// 64 MiB for 8 connections: 1 MiB reserved each, 56 MiB shared.
	ts := startServer(t, Options{BufferBudget: 64 << 20, MaxConnections: 8}, e)
	holder := dialUnix(t, ts)
	holder.negotiate("vol0", false, false, false)
	holder.send(wire.Request{Type: wire.CmdRead, Length: MaxPayload}, nil)
	<-entered
	waiter := dialUnix(t, ts)
	waiter.negotiate("vol0", false, false, false)
	waiter.send(wire.Request{Type: wire.CmdRead, Length: MaxPayload}, nil)
	waitStats(t, ts.Server, "the second READ waiting for budget", func(s Stats) bool { return s.LimitHits[LimitBuffers] == 1 })

	ts.cancel()
	if r := waiter.recv(); r.errno != wire.ESHUTDOWN {
		t.Fatalf("the waiting READ: %v, want ESHUTDOWN", r)
	}
	close(release)
	if r := holder.recv(); r.errno != 0 || len(r.data) != MaxPayload {
		t.Fatalf("the READ holding the budget: %v, %d bytes", r, len(r.data))
	}
	ts.stop(t)
}
